package main

import "errors"

func runScan(args []string) error { return errors.New("not implemented") }
