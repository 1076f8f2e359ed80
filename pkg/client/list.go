package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/handoff-dev/handoff/events"
)

// ListOptions filter and page GET /v1/tasks. Zero values mean no filter
// and the server's default page size (50).
type ListOptions struct {
	// Type is a task type such as "files.manifest", or a family such as
	// "files.>".
	Type string
	// Statuses lists the statuses to include.
	Statuses []events.Status
	// CreatedAfter and CreatedBefore bound created_at, exclusive.
	CreatedAfter, CreatedBefore time.Time
	// Cursor is the NextCursor of the previous page, listed with the same
	// filters.
	Cursor string
	// Limit is the maximum number of tasks of the page, from 1 to 500.
	Limit int
}

// TaskPage is a page of tasks, newest first.
type TaskPage struct {
	Tasks []events.View `json:"tasks"`
	// NextCursor continues the listing in ListOptions.Cursor; empty on the
	// last page. A page may hold fewer than Limit tasks while more follow,
	// so page on while it is set.
	NextCursor string `json:"next_cursor,omitempty"`
}

// List returns a page of the caller's tenant's tasks, newest first. Pages
// stay stable while new tasks arrive: those appear only on a new first
// page.
func (c *Client) List(ctx context.Context, opts ListOptions) (*TaskPage, error) {
	hreq, err := c.newRequest(ctx, http.MethodGet, "/v1/tasks", nil)
	if err != nil {
		return nil, err
	}
	hreq.URL.RawQuery = opts.query().Encode()
	resp, err := c.do(hreq, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	page := &TaskPage{}
	if err := decode(resp, page); err != nil {
		return nil, err
	}
	return page, nil
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.Type != "" {
		q.Set("type", o.Type)
	}
	if len(o.Statuses) > 0 {
		statuses := make([]string, len(o.Statuses))
		for i, s := range o.Statuses {
			statuses[i] = string(s)
		}
		q.Set("status", strings.Join(statuses, ","))
	}
	if !o.CreatedAfter.IsZero() {
		q.Set("created_after", o.CreatedAfter.Format(time.RFC3339Nano))
	}
	if !o.CreatedBefore.IsZero() {
		q.Set("created_before", o.CreatedBefore.Format(time.RFC3339Nano))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}
