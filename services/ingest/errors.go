package ingest

import "errors"

// ErrInvalidConfig is returned by [Config.Validate] and [New] when a field
// of the configuration is invalid. The error text names the field.
var ErrInvalidConfig = errors.New("invalid ingest config")
