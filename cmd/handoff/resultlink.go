package main

import (
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/handoff-dev/handoff/events"
)

// resolveLink returns ref with its signed link made absolute against the
// API's base URL, or ref unchanged when either does not parse.
func resolveLink(ref events.ResultLink, apiURL string) events.ResultLink {
	base, err := url.Parse(apiURL)
	if err != nil || ref.URL == "" {
		return ref
	}
	link, err := url.Parse(ref.URL)
	if err != nil {
		return ref
	}
	ref.URL = base.ResolveReference(link).String()
	return ref
}

// printDownload prints where to download a result stored by reference, and
// until when the link works.
func printDownload(w io.Writer, taskID string, ref events.ResultLink) {
	if ref.URL == "" {
		fmt.Fprintf(w, "The result (%d bytes, %s) is stored as %s; GET /v1/tasks/%s/result redirects to it.\n", ref.Size, ref.MediaType, ref.Object, taskID)
		return
	}
	until := ""
	if ref.ExpiresAt != nil {
		until = " until " + ref.ExpiresAt.Local().Format(time.DateTime)
	}
	fmt.Fprintf(w, "Download the result (%d bytes, %s, sha256 %s)%s:\n  curl -o result %q\n", ref.Size, ref.MediaType, ref.SHA256, until, ref.URL)
}
