// Package logging builds Handoff's zap loggers and holds the field keys
// every service uses, so the same fact is logged under the same key
// everywhere.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Field keys.
const (
	KeyTaskID   = "task_id"
	KeyTaskType = "task_type"
	KeyTenant   = "tenant"
	KeyAttempt  = "attempt"
	KeyEvent    = "event"
	KeyKind     = "kind"
	KeySeq      = "seq"
	KeyEndpoint = "endpoint"
	KeyError    = "error"
)

// Format is the encoding of log lines.
type Format string

// Log formats.
const (
	FormatJSON    Format = "json"
	FormatConsole Format = "console"
)

// New returns a logger writing to stderr in format at level ("debug",
// "info", "warn" or "error").
func New(format Format, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("invalid log level %q: use debug, info, warn or error", level)
	}

	var cfg zap.Config
	switch format {
	case FormatJSON, "":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "time"
		cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	case FormatConsole:
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		cfg.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("invalid log format %q: use json or console", format)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	return cfg.Build()
}

// Task returns the fields that identify a task in every log line about it.
func Task(tenant, taskID, taskType string) []zap.Field {
	return []zap.Field{zap.String(KeyTenant, tenant), zap.String(KeyTaskID, taskID), zap.String(KeyTaskType, taskType)}
}
