package bus_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/handoff-dev/handoff/events"
	"github.com/handoff-dev/handoff/pkg/bus"
	"github.com/handoff-dev/handoff/pkg/natstest"
)

func TestResultsBucketProvisioned(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	require.Equal(t, "handoff-results", b.Names().ResultsBucket())
	store, err := b.JetStream().ObjectStore(ctx, "handoff-results")
	require.NoError(t, err)
	status, err := store.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, bus.DefaultMaxAge, status.TTL())
	require.Equal(t, 1, status.Replicas())

	// Verify names the missing bucket.
	require.NoError(t, b.JetStream().DeleteObjectStore(ctx, "handoff-results"))
	err = b.Verify(ctx)
	require.ErrorIs(t, err, bus.ErrNotProvisioned)
	require.Contains(t, err.Error(), "object store handoff-results does not exist")

	require.NoError(t, b.Provision(ctx, bus.StreamOptions{MaxAge: time.Hour}))
	require.NoError(t, b.Verify(ctx))
	store, err = b.JetStream().ObjectStore(ctx, "handoff-results")
	require.NoError(t, err)
	status, err = store.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, time.Hour, status.TTL())
}

func TestResultsBucketFollowsNamespace(t *testing.T) {
	n, err := bus.NewNames("staging-2")
	require.NoError(t, err)
	require.Equal(t, "staging-2-results", n.ResultsBucket())
}

func TestPutResultRoundTrip(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	data := make([]byte, 5<<20+17)
	_, err := rand.Read(data)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	obj := bus.ResultObject{Tenant: "acme", TaskID: "01JQ4TASK00000000000000000", Attempt: 2}

	ref, err := b.PutResult(ctx, obj, "application/pdf", bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, events.ResultRef{
		Object:    "acme.01JQ4TASK00000000000000000.2",
		Size:      int64(len(data)),
		MediaType: "application/pdf",
		SHA256:    hex.EncodeToString(sum[:]),
	}, ref)

	r, err := b.OpenResult(ctx, ref.Object)
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.True(t, bytes.Equal(data, got), "the bytes read differ from the bytes stored")

	// The media type is stored with the object for other readers.
	store, err := b.JetStream().ObjectStore(ctx, b.Names().ResultsBucket())
	require.NoError(t, err)
	info, err := store.GetInfo(ctx, ref.Object)
	require.NoError(t, err)
	require.Equal(t, "application/pdf", info.Headers.Get("Content-Type"))
}

func TestPutResultEmpty(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	ref, err := b.PutResult(ctx, bus.ResultObject{Tenant: "acme", TaskID: "empty", Attempt: 1}, "application/octet-stream", strings.NewReader(""))
	require.NoError(t, err)
	require.Zero(t, ref.Size)
	require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ref.SHA256)

	r, err := b.OpenResult(ctx, ref.Object)
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.Empty(t, got)
}

func TestPutResultReplacesObject(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()
	obj := bus.ResultObject{Tenant: "acme", TaskID: "twice", Attempt: 1}

	_, err := b.PutResult(ctx, obj, "text/plain", strings.NewReader("first"))
	require.NoError(t, err)
	ref, err := b.PutResult(ctx, obj, "text/plain", strings.NewReader("second"))
	require.NoError(t, err)
	require.Equal(t, int64(6), ref.Size)

	r, err := b.OpenResult(ctx, ref.Object)
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.Equal(t, "second", string(got))
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestPutResultAbortsOnReadError(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()
	errStop := errors.New("program failed")
	obj := bus.ResultObject{Tenant: "acme", TaskID: "aborted", Attempt: 1}

	_, err := b.PutResult(ctx, obj, "application/json", &failingReader{data: make([]byte, 1<<20), err: errStop})
	require.ErrorIs(t, err, errStop)

	_, err = b.OpenResult(ctx, obj.Name())
	require.ErrorIs(t, err, bus.ErrResultNotFound)

	// No chunk of the aborted upload is left in the bucket's stream.
	stream, err := b.JetStream().Stream(ctx, "OBJ_"+b.Names().ResultsBucket())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, 10*time.Second, 20*time.Millisecond)
}

func TestDeleteResult(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	ref, err := b.PutResult(ctx, bus.ResultObject{Tenant: "acme", TaskID: "gone", Attempt: 1}, "application/json", strings.NewReader(`[1,2,3]`))
	require.NoError(t, err)
	require.NoError(t, b.DeleteResult(ctx, ref.Object))

	_, err = b.OpenResult(ctx, ref.Object)
	require.ErrorIs(t, err, bus.ErrResultNotFound)
	require.NoError(t, b.DeleteResult(ctx, ref.Object), "deleting twice")
	require.NoError(t, b.DeleteResult(ctx, "acme.never.1"), "deleting what never existed")
}

func TestPutResultRejectsInvalidNames(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()

	for _, obj := range []bus.ResultObject{
		{Tenant: "Acme", TaskID: "t", Attempt: 1},
		{Tenant: "acme", TaskID: "a.b", Attempt: 1},
		{Tenant: "acme", TaskID: "t", Attempt: 0},
		{Tenant: "", TaskID: "t", Attempt: 1},
	} {
		_, err := b.PutResult(ctx, obj, "application/json", strings.NewReader("1"))
		require.ErrorIs(t, err, events.ErrInvalidToken, "%+v", obj)
	}
	_, err := b.PutResult(ctx, bus.ResultObject{Tenant: "acme", TaskID: "t", Attempt: 1}, "", strings.NewReader("1"))
	require.ErrorContains(t, err, "media type is empty")
}

func TestParseResultObject(t *testing.T) {
	obj, err := bus.ParseResultObject("acme.01JQ4TASK00000000000000000.12")
	require.NoError(t, err)
	require.Equal(t, bus.ResultObject{Tenant: "acme", TaskID: "01JQ4TASK00000000000000000", Attempt: 12}, obj)

	for _, name := range []string{
		"", "acme", "acme.t", "acme.t.1.2", "Acme.t.1", "acme.t/x.1", "acme..1", ".t.1",
		"acme.t.0", "acme.t.01", "acme.t.+1", "acme.t.-1", "acme.t.1x", "acme.t." + strings.Repeat("9", 10),
	} {
		_, err := bus.ParseResultObject(name)
		require.ErrorIs(t, err, events.ErrInvalidToken, "%q", name)
	}
}

func TestOpenResultWithoutBucket(t *testing.T) {
	b := natstest.Start(t).Bus(t)
	ctx := context.Background()
	require.NoError(t, b.JetStream().DeleteObjectStore(ctx, b.Names().ResultsBucket()))

	fresh, err := bus.New(b.Conn(), "")
	require.NoError(t, err)
	_, err = fresh.OpenResult(ctx, "acme.t.1")
	require.ErrorIs(t, err, jetstream.ErrBucketNotFound)
}
