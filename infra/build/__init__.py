"""Build and run the deployment artifact as `sam build` makes it (`make artifact-test`, `make bench`)."""
