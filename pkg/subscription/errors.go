package subscription

import "errors"

var (
	// ErrNotFound is returned when the tenant has no subscription with the
	// id, because it never existed, was deleted or belongs to another
	// tenant.
	ErrNotFound = errors.New("subscription not found")

	// ErrInvalidID is returned for an id that no subscription can have:
	// empty, longer than 64 bytes, or with characters other than A-Z, a-z,
	// 0-9, '_' and '-'.
	ErrInvalidID = errors.New("invalid subscription id")

	// ErrLimitReached is returned by [Store.Create] when the tenant already
	// has the maximum number of subscriptions.
	ErrLimitReached = errors.New("subscription limit reached")

	// ErrConflict is returned when a subscription kept changing while a
	// Store method tried to update it, so the update was not written.
	ErrConflict = errors.New("subscription changed concurrently")
)
