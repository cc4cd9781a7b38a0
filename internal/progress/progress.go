// Package progress carries what shipit's domain packages have to say while
// they work (notices, warnings, bytes pushed) as data, the way
// go-containerregistry's remote.WithProgress does: packages emit events,
// and the command line decides how to show them (plain lines, a terminal
// display, or JSON). No library prints.
package progress

import (
	"fmt"
	"sync"
	"time"
)

// Kind is what an event reports.
type Kind string

// Event kinds.
const (
	Info      Kind = "info"       // a notice the user should see
	Warning   Kind = "warning"    // something the user should act on
	Debug     Kind = "debug"      // detail for -v
	PushStart Kind = "push-start" // an image's upload begins: Ref
	PushBytes Kind = "push-bytes" // bytes uploaded so far: Done of Total
	PushDone  Kind = "push-done"  // an image's upload ended
)

// Event is one thing that happened.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    Kind      `json:"kind"`
	Subject string    `json:"subject,omitempty"` // an image or an overlay
	Ref     string    `json:"ref,omitempty"`     // the image reference concerned
	Msg     string    `json:"msg,omitempty"`
	Done    int64     `json:"done,omitempty"` // push-bytes: bytes so far
	Total   int64     `json:"total,omitempty"`
}

// Sink receives events. It must be safe for concurrent use.
type Sink interface {
	Event(Event)
}

// Func adapts a function to a Sink.
type Func func(Event)

// Event implements Sink.
func (f Func) Event(e Event) { f(e) }

// Discard drops every event.
var Discard Sink = Func(func(Event) {})

// Or returns s, or Discard when s is nil.
func Or(s Sink) Sink {
	if s == nil {
		return Discard
	}
	return s
}

// Emit sends an event, stamping its time.
func Emit(s Sink, e Event) {
	if s == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.Event(e)
}

// Infof emits a notice.
func Infof(s Sink, format string, args ...any) {
	Emit(s, Event{Kind: Info, Msg: fmt.Sprintf(format, args...)})
}

// Warnf emits a warning.
func Warnf(s Sink, format string, args ...any) {
	Emit(s, Event{Kind: Warning, Msg: fmt.Sprintf(format, args...)})
}

// Debugf emits detail for -v.
func Debugf(s Sink, format string, args ...any) {
	Emit(s, Event{Kind: Debug, Msg: fmt.Sprintf(format, args...)})
}

// Recorder keeps the events it receives, for tests and for callers that
// report them later.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Event implements Sink.
func (r *Recorder) Event(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns what was received so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Messages returns the messages of the events of one kind.
func (r *Recorder) Messages(k Kind) []string {
	var out []string
	for _, e := range r.Events() {
		if e.Kind == k {
			out = append(out, e.Msg)
		}
	}
	return out
}
