package shim

import (
	"context"
	"os"
	"sync"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// eventQueue publishes events to containerd one at a time, in the order they
// were queued. The publisher retries failed sends; a send that still fails is
// logged, never fatal.
type eventQueue struct {
	ctx       context.Context
	publisher events.Publisher
	ch        chan queuedEvent
	closeOnce sync.Once
}

type queuedEvent struct {
	topic string
	event events.Event
}

func newEventQueue(ctx context.Context, p events.Publisher) *eventQueue {
	q := &eventQueue{ctx: ctx, publisher: p, ch: make(chan queuedEvent, 128)}
	go q.run()
	return q
}

func (q *eventQueue) publish(topic string, e events.Event) {
	defer func() {
		// Publishing after shutdown is dropped, not a crash.
		if recover() != nil {
			log.G(q.ctx).WithField("topic", topic).Warn("event dropped: shim is shutting down")
		}
	}()
	q.ch <- queuedEvent{topic: topic, event: e}
}

func (q *eventQueue) run() {
	for e := range q.ch {
		if err := q.publisher.Publish(q.ctx, e.topic, e.event); err != nil {
			log.G(q.ctx).WithError(err).WithField("topic", e.topic).Error("publish event")
		}
	}
}

func (q *eventQueue) close() {
	q.closeOnce.Do(func() { close(q.ch) })
}

// fileHook copies shim log entries to the log_path file of runsc.toml.
type fileHook struct {
	mu sync.Mutex
	f  *os.File
}

func (h *fileHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *fileHook) Fire(e *logrus.Entry) error {
	b, err := e.Logger.Formatter.Format(e)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err = h.f.Write(b)
	return err
}
