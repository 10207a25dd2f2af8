package store_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chat5202ol/mop/pkg/event"
	"github.com/chat5202ol/mop/services/api-rest/internal/store"
)

func (f *fixture) upload(by event.User, image bool) store.Attachment {
	f.t.Helper()
	id := event.NewID(f.clock.Now())
	a := store.Attachment{
		Attachment: event.Attachment{ID: id, Name: "f-" + id + ".txt", ContentType: "text/plain; charset=utf-8", Size: 5},
		UploaderID: by.ID, StorageKey: id, CreatedAt: f.clock.Now(),
	}
	if image {
		a.Name, a.ContentType, a.Width, a.Height, a.ThumbKey, a.Thumbnail = "p.png", "image/png", 4, 3, id+".thumb", true
	}
	if err := f.s.CreateAttachment(f.ctx, a); err != nil {
		f.t.Fatalf("create attachment: %v", err)
	}
	return a
}

func deletedIDs(t *testing.T, f *fixture) []string {
	t.Helper()
	as, err := f.s.DeletedAttachments(f.ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	slices.Sort(out)
	return out
}

func TestAttachmentsOnMessages(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob, eve := f.user("alice"), f.user("bob"), f.user("eve")
		d := f.direct(alice, bob)
		f.drain()
		pic, doc := f.upload(alice, true), f.upload(alice, false)

		// Before it is sent only the uploader reads it.
		if _, err := f.s.ReadableAttachment(f.ctx, alice.ID, pic.ID); err != nil {
			t.Fatalf("uploader: %v", err)
		}
		_, err := f.s.ReadableAttachment(f.ctx, bob.ID, pic.ID)
		wantErr(t, err, store.ErrNotFound)

		// Someone else's, unknown and duplicate-free lists refuse the whole send.
		bobs := f.upload(bob, false)
		for name, ids := range map[string][]string{"someone else's": {pic.ID, bobs.ID}, "unknown": {"01UNKNOWN"}} {
			_, _, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, Body: "x", AttachmentIDs: ids})
			if err == nil {
				t.Fatalf("%s: sent", name)
			}
			wantErr(t, err, store.ErrAttachmentUnavailable)
		}
		f.expectEvents()
		if c, _ := f.s.Conversation(f.ctx, alice.ID, d.ID); c.LastSeq != 0 {
			t.Fatalf("a refused send used seq %d", c.LastSeq)
		}

		m, created, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, ClientMsgID: "a1",
			AttachmentIDs: []string{doc.ID, pic.ID}})
		if err != nil || !created {
			t.Fatal(created, err)
		}
		want := []event.Attachment{doc.Attachment, pic.Attachment}
		if !reflect.DeepEqual(m.Attachments, want) || m.Seq != 1 {
			t.Fatalf("attachments %+v, want %+v", m.Attachments, want)
		}
		evs := f.expectEvents(ev(event.MessageCreated, alice, bob))
		if got := decode[event.Message](t, evs[0]); !reflect.DeepEqual(got.Attachments, want) {
			t.Fatalf("event attachments %+v", got.Attachments)
		}
		// History, the retry by client id and the conversation's last message
		// carry them too.
		hist, err := f.s.Messages(f.ctx, bob.ID, d.ID, store.Page{})
		if err != nil || len(hist) != 1 || !reflect.DeepEqual(hist[0].Attachments, want) {
			t.Fatalf("history %+v %v", hist, err)
		}
		again, created, err := f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, ClientMsgID: "a1",
			AttachmentIDs: []string{doc.ID, pic.ID}})
		if err != nil || created || !reflect.DeepEqual(again, m) {
			t.Fatalf("retry %+v %v %v", again, created, err)
		}
		if c, _ := f.s.Conversation(f.ctx, bob.ID, d.ID); c.LastMessage == nil || !reflect.DeepEqual(c.LastMessage.Attachments, want) {
			t.Fatalf("last message %+v", c.LastMessage)
		}
		// Sent once only.
		_, _, err = f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, Body: "x", AttachmentIDs: []string{pic.ID}})
		wantErr(t, err, store.ErrAttachmentUnavailable)

		// Members read it, others do not.
		for _, u := range []event.User{alice, bob} {
			if _, err := f.s.ReadableAttachment(f.ctx, u.ID, pic.ID); err != nil {
				t.Fatalf("%s: %v", u.Username, err)
			}
		}
		_, err = f.s.ReadableAttachment(f.ctx, eve.ID, pic.ID)
		wantErr(t, err, store.ErrNotFound)

		// Deleting the message deletes its attachments.
		if _, err := f.s.DeleteMessage(f.ctx, alice.ID, d.ID, m.ID); err != nil {
			t.Fatal(err)
		}
		hist, _ = f.s.Messages(f.ctx, bob.ID, d.ID, store.Page{})
		if len(hist[0].Attachments) != 0 {
			t.Fatalf("tombstone keeps %+v", hist[0].Attachments)
		}
		_, err = f.s.ReadableAttachment(f.ctx, bob.ID, pic.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = f.s.LiveAttachment(f.ctx, pic.ID)
		wantErr(t, err, store.ErrNotFound)
		if got, want := deletedIDs(t, f), slices.Sorted(slices.Values([]string{doc.ID, pic.ID})); !slices.Equal(got, want) {
			t.Fatalf("deleted %v, want %v", got, want)
		}
		if err := f.s.PurgeAttachments(f.ctx, []string{doc.ID, pic.ID, bobs.ID}); err != nil {
			t.Fatal(err)
		}
		if got := deletedIDs(t, f); len(got) != 0 {
			t.Fatalf("after purge %v", got)
		}
		if _, err := f.s.LiveAttachment(f.ctx, bobs.ID); err != nil {
			t.Fatalf("purge removed a live upload: %v", err)
		}
	})
}

func TestAvatarAndUnusedUploads(t *testing.T) {
	eachDB(t, func(t *testing.T, f *fixture) {
		alice, bob := f.user("alice"), f.user("bob")
		doc, pic1, pic2 := f.upload(alice, false), f.upload(alice, true), f.upload(alice, true)
		bobs := f.upload(bob, true)

		for name, id := range map[string]string{"not an image": doc.ID, "someone else's": bobs.ID, "unknown": "01NOPE"} {
			_, err := f.s.SetAvatar(f.ctx, alice.ID, id)
			if err == nil {
				t.Fatalf("%s accepted", name)
			}
			wantErr(t, err, store.ErrAttachmentUnavailable)
		}
		u, err := f.s.SetAvatar(f.ctx, alice.ID, pic1.ID)
		if err != nil || u.AvatarID != pic1.ID {
			t.Fatalf("%+v %v", u, err)
		}
		if got, _ := f.s.UserByID(f.ctx, alice.ID); got.AvatarID != pic1.ID {
			t.Fatalf("profile %+v", got)
		}
		// An avatar is readable by anybody, and cannot also be sent.
		if _, err := f.s.ReadableAttachment(f.ctx, bob.ID, pic1.ID); err != nil {
			t.Fatalf("bob reads the avatar: %v", err)
		}
		d := f.direct(alice, bob)
		_, _, err = f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, Body: "x", AttachmentIDs: []string{pic1.ID}})
		wantErr(t, err, store.ErrAttachmentUnavailable)

		// A new avatar deletes the old one.
		if u, err = f.s.SetAvatar(f.ctx, alice.ID, pic2.ID); err != nil || u.AvatarID != pic2.ID {
			t.Fatalf("%+v %v", u, err)
		}
		if got := deletedIDs(t, f); !slices.Equal(got, []string{pic1.ID}) {
			t.Fatalf("deleted %v", got)
		}

		// Unused uploads expire after the cutoff; avatars never do.
		f.clock.Advance(time.Hour)
		late := f.upload(alice, false)
		n, err := f.s.ExpireUnusedAttachments(f.ctx, f.clock.Now().Add(-30*time.Minute))
		if err != nil || n != 2 { // doc and bob's
			t.Fatalf("expired %d %v", n, err)
		}
		want := []string{doc.ID, pic1.ID, bobs.ID}
		slices.Sort(want)
		if got := deletedIDs(t, f); !slices.Equal(got, want) {
			t.Fatalf("deleted %v, want %v", got, want)
		}
		// An expired upload cannot be sent any more.
		_, _, err = f.s.CreateMessage(f.ctx, store.NewMessage{ConversationID: d.ID, SenderID: alice.ID, Body: "x", AttachmentIDs: []string{doc.ID}})
		wantErr(t, err, store.ErrAttachmentUnavailable)

		// Deleting the account drops the avatar and unused uploads.
		if _, err := f.s.DeleteUser(f.ctx, alice.ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.s.UserByID(f.ctx, alice.ID); got.AvatarID != "" {
			t.Fatalf("deleted user keeps avatar %q", got.AvatarID)
		}
		want = append(want, pic2.ID, late.ID)
		slices.Sort(want)
		if got := deletedIDs(t, f); !slices.Equal(got, want) {
			t.Fatalf("deleted %v, want %v", got, want)
		}
		// A deleted account uploads nothing.
		err = f.s.CreateAttachment(f.ctx, store.Attachment{Attachment: event.Attachment{ID: "01LATE", Name: "x", ContentType: "image/png"},
			UploaderID: alice.ID, StorageKey: "01LATE", CreatedAt: f.clock.Now()})
		wantErr(t, err, store.ErrNotFound)
	})
}
