package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

// maxUpdateBody bounds a webhook request body; real updates are a few KiB.
const maxUpdateBody = 1 << 20

// RegisterWebhook checks the token and points Telegram at WebhookURL with
// WebhookSecret, for message and callback_query updates. Every replica may
// call it at start; setWebhook is idempotent.
func (a *Adapter) RegisterWebhook(ctx context.Context) error {
	if a.opts.WebhookURL == "" {
		return errors.New("register webhook: no webhook URL")
	}
	if err := a.identify(ctx); err != nil {
		return err
	}
	params := &tgbot.SetWebhookParams{
		URL:            a.opts.WebhookURL,
		SecretToken:    a.opts.WebhookSecret,
		AllowedUpdates: allowedUpdates,
	}
	err := a.call(ctx, "setWebhook", viaLibrary(func(ctx context.Context) error {
		_, err := a.tg.SetWebhook(ctx, params)
		return err
	}))
	if err != nil {
		return fmt.Errorf("register webhook: %w", err)
	}
	return nil
}

// Drain makes the webhook handler refuse new updates with 503, so Telegram
// redelivers them (to another replica, or to this one after a restart).
// Updates already being handled finish; http.Server.Shutdown waits for them.
func (a *Adapter) Drain() { a.draining.Store(true) }

// WebhookHandler serves Telegram's webhook requests. It answers 200 only
// after the update was handled and its replies sent, so an update whose
// handling was cut short is delivered again.
func (a *Adapter) WebhookHandler() http.Handler {
	return http.HandlerFunc(a.serveWebhook)
}

func (a *Adapter) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	got := r.Header.Get("X-Telegram-Bot-Api-Secret-Token")
	if a.opts.WebhookSecret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.opts.WebhookSecret)) != 1 {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if a.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUpdateBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "update too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if a.quiet(body) {
		a.count("unread", outcomeLimited)
		w.WriteHeader(http.StatusOK)
		return
	}
	var u models.Update
	if err := json.Unmarshal(body, &u); err != nil || u.ID == 0 {
		id, hasID := updateID(body)
		if err == nil || (json.Valid(body) && !hasID) {
			// JSON, but no update: nothing Telegram sends.
			http.Error(w, "bad update", http.StatusBadRequest)
			return
		}
		// The sender knows the secret, so this is Telegram's: any answer
		// but 200 makes it deliver the update again, forever, and hold
		// back the updates behind it.
		a.log.Warn("undecodable update", "update_id", id, "bytes", len(body), "err", err)
		a.count("undecodable", outcomeIgnored)
		w.WriteHeader(http.StatusOK)
		return
	}
	if a.process(r.Context(), &u) == outcomeAborted {
		http.Error(w, "not handled", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}
