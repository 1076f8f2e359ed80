// Package notifier delivers task events to webhooks.
//
// A notifier consumes the terminal events (succeeded, failed, cancelled,
// rejected, expired) and the input_required events of every task type from
// the tasks stream. All instances of a namespace share one durable
// consumer. For an event whose task was submitted with a webhook URL, the
// notifier POSTs the event as a structured-mode CloudEvent
// (application/cloudevents+json). The request is signed per Standard
// Webhooks with every configured secret. Its webhook-id is the event id,
// the same on each retry, and its webhook-timestamp is the time of the
// attempt.
//
// Delivery rules:
//   - 2xx delivers. A network error, a timeout, 408, 429 and 5xx are
//     retried after the Backoff delays with jitter, or after a longer
//     Retry-After. Any other status, including 3xx (redirects are not
//     followed) and 410, gives up at once, as does an address that
//     [CheckAddr] rejects.
//   - The attempt number is the number of times JetStream delivered the
//     event to the consumer. So a redelivery after a crash, a shutdown or a
//     failed read of the task counts as an attempt too.
//   - Every attempt is recorded on the task as a delivered or
//     delivery_failed event, with the endpoint URL minus its query string.
//     Logs name only the endpoint's scheme and host, because paths and
//     queries may contain tokens.
//   - Events stored before the first notifier started are delivered too:
//     the consumer starts at the beginning of the stream.
//
// The webhook given at submit is the only endpoint for now. Subscriptions
// that match events by filter, and a per-endpoint work queue that keeps one
// slow receiver from holding up the others, are to come.
package notifier
