package shim

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// eventQueue publishes events to containerd one at a time, in the order they
// were queued. The publisher retries failed sends; a send that still fails is
// logged, never fatal. Events are sent with a context that outlives the
// shim's shutdown, and shutdown waits for the queue to drain: the last
// /tasks/delete must reach containerd.
type eventQueue struct {
	ctx       context.Context
	publisher shim.Publisher
	ch        chan queuedEvent
	done      chan struct{}
	closeOnce sync.Once
	// mu orders publishing against closing (no send on a closed channel).
	mu     sync.RWMutex
	closed bool
}

type queuedEvent struct {
	topic string
	event events.Event
}

func newEventQueue(ctx context.Context, p shim.Publisher) *eventQueue {
	ns, _ := namespaces.Namespace(ctx)
	q := &eventQueue{
		ctx:       log.WithLogger(namespaces.WithNamespace(context.Background(), ns), log.G(ctx)),
		publisher: p,
		ch:        make(chan queuedEvent, 128),
		done:      make(chan struct{}),
	}
	go q.run()
	return q
}

func (q *eventQueue) publish(topic string, e events.Event) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		// Publishing after shutdown is dropped, not a crash.
		log.G(q.ctx).WithField("topic", topic).Warn("event dropped: shim is shutting down")
		return
	}
	q.ch <- queuedEvent{topic: topic, event: e}
}

func (q *eventQueue) run() {
	defer close(q.done)
	for e := range q.ch {
		if err := q.publisher.Publish(q.ctx, e.topic, e.event); err != nil {
			log.G(q.ctx).WithError(err).WithField("topic", e.topic).Error("publish event")
		}
	}
}

// close stops taking events, waits (bounded) until the queued ones are
// sent, and closes the publisher.
func (q *eventQueue) close(timeout time.Duration) {
	q.closeOnce.Do(func() {
		q.mu.Lock()
		q.closed = true
		close(q.ch)
		q.mu.Unlock()
	})
	select {
	case <-q.done:
	case <-time.After(timeout):
		log.G(q.ctx).Warn("shutdown before all events were published")
	}
	_ = q.publisher.Close()
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
