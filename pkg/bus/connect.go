package bus

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// MinServerVersion is the oldest NATS server Handoff runs on. 2.12 brought
// message schedules, the compare-and-set subject header, per-message TTLs
// and batch direct gets.
const MinServerVersion = "2.12.0"

// syncQueueLen is the channel length of synchronous subscriptions.
const syncQueueLen = 4096

// DefaultConnectTimeout bounds the first connection attempt.
const DefaultConnectTimeout = 5 * time.Second

// Connect connects to the NATS server at url and checks that it runs
// JetStream-capable version [MinServerVersion] or newer. The connection
// reconnects on its own after it was established; the first attempt fails
// fast with an error that says what to check. opts are applied after
// Handoff's defaults, so they can override them.
func Connect(ctx context.Context, url, name string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.Name(name),
		// Every batch read opens a synchronous subscription whose channel
		// is allocated at this length: 4096 covers a batch of 1024 events
		// where the default of 65536 costs 512 KiB per read.
		nats.SyncQueueLen(syncQueueLen),
		nats.Timeout(DefaultConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if deadline, ok := ctx.Deadline(); ok {
		base = append(base, nats.Timeout(time.Until(deadline)))
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w (is a nats-server with JetStream running there? 'handoff dev' starts one)", url, err)
	}

	version := nc.ConnectedServerVersion()
	ok, err := versionAtLeast(version, MinServerVersion)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("NATS server at %s: %w", url, err)
	}
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("%w: the server at %s runs %s; Handoff needs %s or newer", ErrServerTooOld, url, version, MinServerVersion)
	}
	return nc, nil
}

// versionAtLeast compares two "major.minor.patch" versions, ignoring any
// pre-release or build suffix of have.
func versionAtLeast(have, want string) (bool, error) {
	h, err := parseVersion(have)
	if err != nil {
		return false, err
	}
	w, err := parseVersion(want)
	if err != nil {
		return false, err
	}
	for i := range h {
		if h[i] != w[i] {
			return h[i] > w[i], nil
		}
	}
	return true, nil
}

func parseVersion(v string) ([3]int, error) {
	var out [3]int
	core := strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return out, fmt.Errorf("invalid server version %q: want major.minor.patch", v)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, fmt.Errorf("invalid server version %q: %q is not a number", v, p)
		}
		out[i] = n
	}
	return out, nil
}
