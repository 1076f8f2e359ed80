package notifier

import "github.com/handoff-dev/handoff/pkg/bus"

// contentTypeStructured is the content type of a webhook request: a
// structured-mode CloudEvent.
const contentTypeStructured = bus.ContentTypeStructured
