package queue_test

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/relayctl/relayctl/pkg/queue"
)

func Example() {
	dir, _ := os.MkdirTemp("", "spool")
	defer os.RemoveAll(dir)

	q, err := queue.Open(dir, queue.DefaultOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	// The SMTP server answers 250 only after Enqueue returned nil.
	env := &queue.Envelope{From: "app@example.org", Recipients: []queue.Recipient{{Address: "bob@example.net"}}}
	id, err := q.Enqueue(env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		fmt.Println("452 4.3.1", err) // queue.ErrStorage: the client keeps the message
		return
	}
	fmt.Println("due now:", len(q.Due(time.Now())))

	// The delivery engine records a 451 from the receiver...
	q.Update(id, func(e *queue.Envelope) error {
		e.Recipients[0].State = queue.StateDeferred
		e.Recipients[0].NextAttempt = time.Now().Add(5 * time.Minute)
		return nil
	})
	fmt.Println("due now:", len(q.Due(time.Now())))

	rc, _ := q.Content(id)
	b, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Printf("%d bytes queued\n", len(b))

	// ...and later a 250: the last recipient done removes the message.
	q.Update(id, func(e *queue.Envelope) error { e.Recipients[0].State = queue.StateDelivered; return nil })
	fmt.Println("queued:", q.Len())
	// Output:
	// due now: 1
	// due now: 0
	// 22 bytes queued
	// queued: 0
}
