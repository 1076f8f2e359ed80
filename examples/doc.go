// Package examples holds the task types that `handoff dev` serves by
// default (handoff.yaml), the exec handler they run (files-manifest.sh) and
// a slow HTTP service for the http handler (slowapi). Its tests run the
// exec handler as a real process.
package examples
