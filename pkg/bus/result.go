package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
)

// maxAttemptDigits bounds the attempt number in a result object name.
const maxAttemptDigits = 9

// ResultObject identifies the stored result of one attempt of a task.
type ResultObject struct {
	Tenant  string
	TaskID  string
	Attempt int
}

// Name returns the object name "<tenant>.<task_id>.<attempt>", such as
// "acme.01JQ4TASK00000000000000000.1". The tenant in the name binds a link
// signed for it to the tenant. The attempt keeps an attempt that lost its
// lease, and still stores its result, from replacing the result of the
// attempt that took over. Tenants and task ids contain no dots, so the
// name parses back with [ParseResultObject], and every character of it is
// safe in a URL path.
func (o ResultObject) Name() string {
	return o.Tenant + "." + o.TaskID + "." + strconv.Itoa(o.Attempt)
}

// ParseResultObject parses a name made by [ResultObject.Name]. The error
// wraps [events.ErrInvalidToken].
func ParseResultObject(name string) (ResultObject, error) {
	parts := strings.Split(name, ".")
	if len(parts) != 3 {
		return ResultObject{}, fmt.Errorf("%w: result object name %q is not <tenant>.<task_id>.<attempt>", events.ErrInvalidToken, name)
	}
	if err := events.ValidateTenant(parts[0]); err != nil {
		return ResultObject{}, fmt.Errorf("result object name %q: %w", name, err)
	}
	if err := events.ValidateTaskID(parts[1]); err != nil {
		return ResultObject{}, fmt.Errorf("result object name %q: %w", name, err)
	}
	digits := parts[2]
	attempt, err := strconv.Atoi(digits)
	if err != nil || attempt < 1 || len(digits) > maxAttemptDigits || digits[0] < '1' || digits[0] > '9' {
		return ResultObject{}, fmt.Errorf("%w: result object name %q: attempt %q is not a positive number without leading zeros", events.ErrInvalidToken, name, digits)
	}
	return ResultObject{Tenant: parts[0], TaskID: parts[1], Attempt: attempt}, nil
}

// PutResult stores what it reads from r in the results bucket as the
// object o, chunk by chunk, and returns the reference that a succeeded
// event carries. The reference has the object name, the size, mediaType
// and the SHA-256 of the bytes. An error from r or ctx aborts the upload
// and removes the chunks already stored. An object of the same name is
// replaced.
func (b *Bus) PutResult(ctx context.Context, o ResultObject, mediaType string, r io.Reader) (events.ResultRef, error) {
	name := o.Name()
	if _, err := ParseResultObject(name); err != nil {
		return events.ResultRef{}, fmt.Errorf("store result: %w", err)
	}
	if mediaType == "" {
		return events.ResultRef{}, fmt.Errorf("store result %s: media type is empty", name)
	}
	store, err := b.resultStore(ctx)
	if err != nil {
		return events.ResultRef{}, err
	}

	digest := sha256.New()
	meta := jetstream.ObjectMeta{Name: name, Headers: nats.Header{"Content-Type": []string{mediaType}}}
	info, err := store.Put(ctx, meta, io.TeeReader(r, digest))
	if err != nil {
		return events.ResultRef{}, fmt.Errorf("store result %s: %w", name, err)
	}
	return events.ResultRef{
		Object:    name,
		Size:      int64(info.Size),
		MediaType: mediaType,
		SHA256:    hex.EncodeToString(digest.Sum(nil)),
	}, nil
}

// OpenResult opens the result object name for reading. The reader checks
// the object's SHA-256 when it reaches the end, and returns an error in
// place of io.EOF if the bytes differ from what was stored. Close it when
// done. A missing object is [ErrResultNotFound].
//
// NOTE: ctx bounds the whole read, not only the opening, and nats.go
// v1.56.0 gives a ctx without a deadline its default API timeout of 5s.
// Give ctx a deadline long enough for the object's size.
func (b *Bus) OpenResult(ctx context.Context, name string) (io.ReadCloser, error) {
	store, err := b.resultStore(ctx)
	if err != nil {
		return nil, err
	}
	obj, err := store.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("open result %s: %w", name, ErrResultNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open result %s: %w", name, err)
	}
	return obj, nil
}

// DeleteResult removes the result object name. A missing object is not an
// error.
func (b *Bus) DeleteResult(ctx context.Context, name string) error {
	store, err := b.resultStore(ctx)
	if err != nil {
		return err
	}
	err = store.Delete(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete result %s: %w", name, err)
	}
	return nil
}

// resultStore returns a handle of the results bucket, looked up once.
func (b *Bus) resultStore(ctx context.Context) (jetstream.ObjectStore, error) {
	b.resultsMu.Lock()
	defer b.resultsMu.Unlock()
	if b.results != nil {
		return b.results, nil
	}
	store, err := b.js.ObjectStore(ctx, b.names.ResultsBucket())
	if err != nil {
		return nil, fmt.Errorf("look up object store %s: %w", b.names.ResultsBucket(), err)
	}
	b.results = store
	return store, nil
}
