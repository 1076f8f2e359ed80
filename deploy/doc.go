// Package deploy holds no code. Its tests check the deployment files in
// this directory against the services they run: the Dockerfiles, the
// compose file, the kustomize base and overlay, the NATS Helm values and
// the Tiltfile in ../tilt. Docker and Kubernetes need not be installed:
// the tests render the manifests with the kustomize Go API, build the
// binaries with each Dockerfile's own go build command, and run them with
// the settings the manifests give.
package deploy
