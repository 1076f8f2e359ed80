// Package notifier delivers task events to webhooks.
//
// A notifier delivers the terminal events (succeeded, failed, cancelled,
// rejected, expired) and the input_required events of every task to the
// webhook given at submit and to every subscription whose filter matches
// (see package subscription). Each request is a POST of the event as a
// structured-mode CloudEvent (application/cloudevents+json), signed per
// Standard Webhooks. Its webhook-id is the event id, the same on every
// retry and replay. Its webhook-timestamp is the time of the attempt, and
// webhook-signature holds one v1 signature per secret in use. Webhooks
// given at submit are signed with Config.Secrets, and with
// Config.PreviousSecrets until Config.RotationEnds. Subscriptions are
// signed with their own secrets.
//
// Delivery runs in two steps, each a durable consumer shared by every
// instance of a namespace:
//   - The dispatch consumer reads each notified event from the tasks
//     stream and stores one job per endpoint in the deliveries stream, on
//     <namespace>.delivery.<tenant>.<endpoint key>.<task id>. The endpoint
//     key is the subscription id, or "wh-" and a hash of the webhook URL.
//   - The delivery consumer takes the jobs and makes the attempts. A retry
//     waits in the stream (NakWithDelay), so it holds no worker, and each
//     endpoint has at most EndpointConcurrency attempts in flight per
//     instance, so an endpoint that hangs holds up no other.
//
// Delivery rules:
//   - 2xx delivers. A network error, a timeout, 408, 429 and 5xx are
//     retried after the Backoff delays with jitter, or after a longer
//     Retry-After. Any other status gives up at once, including 3xx
//     (redirects are not followed) and 410 Gone, which also disables a
//     subscription. So does an address that the [webhook.Guard] rejects,
//     which is checked on the URL and again on every resolved address
//     when dialing.
//   - The events of one task reach one endpoint in order. A job is
//     delivered only when no job of the same task and endpoint is pending
//     for an earlier event. An event is planned only once the earlier
//     notified events of its task are.
//   - Every attempt is recorded on the task as a delivered or
//     delivery_failed event, with the endpoint URL minus its query and the
//     subscription id. Attempts are numbered from these records, so the
//     numbering and the retry schedule survive restarts. Logs name only
//     the endpoint's scheme and host, because paths and queries may contain
//     tokens.
//   - Events stored before the first notifier started are delivered too:
//     the dispatch consumer starts at the beginning of the stream. A
//     subscription gets only events stored after it was created.
//   - A job whose notifier stops or crashes mid-attempt is delivered again
//     by another instance: at once after a stop (the attempt is recorded
//     as interrupted), after AckWait after a crash.
//
// [Replay] delivers stored events again, with their original ids, for a
// receiver that lost data.
package notifier
