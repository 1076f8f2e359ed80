package ingest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNextWindow(t *testing.T) {
	tests := []struct {
		name                   string
		window, scanned, found uint64
		want                   int
		next                   uint64
	}{
		{"nothing found yet", 1024, 1024, 0, 50, 4096},
		{"dense tenant", 1024, 1024, 512, 50, listWindow},
		{"sparse tenant", 1024, 1024, 10, 40, 4096},
		{"estimate below growth", 4096, 5120, 100, 50, 3201},
		{"nothing wanted", 1024, 1024, 512, 0, 4096},
		{"capped", maxListWindow, maxListWindow, 0, 50, maxListWindow},
	}
	for _, tt := range tests {
		require.Equal(t, tt.next, nextWindow(tt.window, tt.scanned, tt.found, tt.want), tt.name)
	}
}
