// Not Go: this file makes deploy/cdk a module of its own so that `go build ./...`, `go vet ./...` and `go test ./...`
// of Warden's module skip it. Its node_modules (the CDK CLI) ships Go templates that are not valid Go packages.
module github.com/warden-egress/warden/deploy/cdk

go 1.26
