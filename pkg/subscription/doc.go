// Package subscription stores webhook subscriptions: endpoints that
// receive every task event of a tenant that matches a filter of event
// kinds and a task type prefix, signed with the subscription's own secret.
//
// A [Store] creates, reads, lists, disables and deletes subscriptions, and
// rotates their secrets. Every method takes the tenant of the caller and
// acts only on that tenant's subscriptions, so HTTP handlers can pass the
// authenticated tenant and the request straight through. Inputs are
// checked by [Input.Validate], whose error is an [events.FieldErrors]
// that names each invalid field. A [Subscription] never carries the secret.
// Only [Store.Create] and [Store.RotateSecret] return it, once, in a
// [Created].
//
// Each subscription is one message on
// <namespace>.registry.subscription.<tenant>.<id> in the registry stream,
// which keeps the last message per subject. A deleted subscription is
// replaced by a tombstone that expires after [TombstoneTTL]. The notifier
// matches events with a [Cache] that follows the stream, and reads a
// subscription's secrets with [Store.Target] before each attempt.
package subscription
