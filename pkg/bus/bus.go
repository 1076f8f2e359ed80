// Package bus is Handoff's only way to NATS: it connects (and checks the
// server version), provisions and verifies the streams, encodes task events
// as CloudEvents, appends them with the per-task compare-and-set, and reads
// one task's events in a single batch request.
package bus

import (
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/handoff-dev/handoff/events"
)

// Bus appends and reads task events in one namespace. It is safe for
// concurrent use.
type Bus struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	names Names

	// stream is the handle of the tasks stream for purges, looked up on
	// first use.
	streamMu sync.Mutex
	stream   jetstream.Stream

	// results is the handle of the results object store, looked up on
	// first use.
	resultsMu sync.Mutex
	results   jetstream.ObjectStore
}

// New returns a Bus on an open connection. namespace is the first token of
// every subject; empty means [events.DefaultNamespace].
func New(nc *nats.Conn, namespace string) (*Bus, error) {
	names, err := NewNames(namespace)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	return &Bus{nc: nc, js: js, names: names}, nil
}

// Conn returns the NATS connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream returns the JetStream context.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Names returns the subject and stream names of the namespace.
func (b *Bus) Names() Names { return b.names }

// Names derives every subject and stream name from a namespace, so two
// deployments can share one NATS account.
type Names struct {
	Namespace string
}

// NewNames validates namespace and returns its names. Empty means
// [events.DefaultNamespace].
func NewNames(namespace string) (Names, error) {
	if namespace == "" {
		namespace = events.DefaultNamespace
	}
	if err := events.ValidateNamespace(namespace); err != nil {
		return Names{}, err
	}
	return Names{Namespace: namespace}, nil
}

// TasksStream is the stream of all task events, HANDOFF_TASKS by default.
func (n Names) TasksStream() string { return n.streamName("TASKS") }

// RegistryStream is the stream of task type registrations and webhook
// subscriptions, HANDOFF_REGISTRY by default.
func (n Names) RegistryStream() string { return n.streamName("REGISTRY") }

// DeliveriesStream is the work queue of pending webhook deliveries,
// HANDOFF_DELIVERIES by default.
func (n Names) DeliveriesStream() string { return n.streamName("DELIVERIES") }

// ResultsBucket is the object store of results too large to inline in a
// succeeded event, handoff-results by default. Its stream is
// OBJ_<bucket>.
func (n Names) ResultsBucket() string { return n.Namespace + "-results" }

// TasksSubjects is the subject filter of the tasks stream.
func (n Names) TasksSubjects() string { return n.Namespace + ".task.>" }

// RegistrySubjects is the subject filter of the registry stream.
func (n Names) RegistrySubjects() string { return n.Namespace + ".registry.>" }

// DeliveriesSubjects is the subject filter of the deliveries stream.
func (n Names) DeliveriesSubjects() string { return n.Namespace + ".delivery.>" }

// TypeRegistration is the registry subject of a task type.
func (n Names) TypeRegistration(taskType string) string {
	return n.Namespace + ".registry.type." + taskType
}

// TypeRegistrations is the filter of every task type registration.
func (n Names) TypeRegistrations() string { return n.Namespace + ".registry.type.>" }

// APISubject is the subject of an endpoint of the NATS request API, such
// as handoff.api.submit for "submit". The API is not stored in a stream.
func (n Names) APISubject(endpoint string) string { return n.Namespace + ".api." + endpoint }

// APISubjects is the filter of every endpoint of the NATS request API.
func (n Names) APISubjects() string { return n.Namespace + ".api.>" }

// TaskFilter matches every event of one task.
func (n Names) TaskFilter(tenant, taskID string) string {
	return events.TaskFilter(n.Namespace, tenant, taskID)
}

// KindFilter matches events of one kind for task types matching
// typePattern, across tenants.
func (n Names) KindFilter(kind events.Kind, typePattern string) string {
	return events.KindFilter(n.Namespace, kind, typePattern)
}

func (n Names) streamName(suffix string) string {
	return strings.ToUpper(n.Namespace) + "_" + suffix
}
