package registry

// Dependencies exposes the generated dependency closure to the tests.
var Dependencies = dependencies
