package wechat

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/credential"
)

// The access_token is per app, lasts about two hours, and each refresh
// invalidates the one before (WeChat keeps the old one valid for a few
// minutes). All replicas therefore share one token in the store, and
// one replica at a time refreshes it, under a lock in the store; the
// others wait for it to appear. A token WeChat refuses is dropped only if
// it is still the stored one (compare-and-delete), so a replica that saw
// an old token refused does not throw away the new one another replica
// just fetched.
//
// tokens implements the library's credential.AccessTokenContextHandle,
// and keeps the token through the library's cache.ContextCache
// interface, implemented over the Store (our go-redis client) rather
// than the library's own Redis client.
var (
	_ credential.AccessTokenContextHandle = (*tokens)(nil)
	_ cache.ContextCache                  = valueCache{}
)

const (
	tokenMargin  = 5 * time.Minute  // refresh this long before WeChat's expiry
	tokenLockTTL = 15 * time.Second // a refresher that dies frees the lock after this
	tokenPoll    = 25 * time.Millisecond
)

type tokens struct {
	a     *Adapter
	cache valueCache
	name  string // the token's cache key
	lock  string // the refresh lock's name
}

func newTokens(a *Adapter) *tokens {
	return &tokens{
		a:     a,
		cache: valueCache{v: a.opts.Store},
		name:  "wx:token:" + a.opts.AppID,
		lock:  "wx:token-lock:" + a.opts.AppID,
	}
}

// GetAccessToken implements credential.AccessTokenHandle.
func (t *tokens) GetAccessToken() (string, error) {
	return t.GetAccessTokenContext(context.Background())
}

// GetAccessTokenContext implements credential.AccessTokenContextHandle.
func (t *tokens) GetAccessTokenContext(ctx context.Context) (string, error) { return t.get(ctx) }

// get returns the shared token, fetching a new one under the lock when
// there is none.
func (t *tokens) get(ctx context.Context) (string, error) {
	deadline := time.Now().Add(t.a.tokenWait)
	owner := rand.Text()
	for {
		if tok, ok := cache.GetContext(ctx, t.cache, t.name).(string); ok && tok != "" {
			return tok, nil
		}
		got, err := t.a.opts.Store.SetValue(ctx, t.lock, owner, tokenLockTTL, true)
		if err != nil {
			return "", fmt.Errorf("access token: %w", err)
		}
		if got {
			tok, err := t.refresh(ctx)
			if _, uerr := t.a.opts.Store.DeleteValue(context.WithoutCancel(ctx), t.lock, owner); uerr != nil {
				t.a.log.Warn("release access token lock", "err", uerr)
			}
			return tok, err
		}
		// Another replica is refreshing: wait for its token.
		if time.Now().After(deadline) {
			return "", errors.New("access token: another replica's refresh did not finish")
		}
		tm := time.NewTimer(tokenPoll)
		select {
		case <-ctx.Done():
			tm.Stop()
			return "", ctx.Err()
		case <-tm.C:
		}
	}
}

// refresh fetches a token under the lock. A token stored since the last
// look (the previous holder finished just before the lock was taken) is
// used instead: fetching would invalidate it.
func (t *tokens) refresh(ctx context.Context) (string, error) {
	if tok, ok := cache.GetContext(ctx, t.cache, t.name).(string); ok && tok != "" {
		return tok, nil
	}
	var res credential.ResAccessToken
	q := url.Values{"grant_type": {"client_credential"}, "appid": {t.a.opts.AppID}, "secret": {t.a.opts.AppSecret}}
	if err := t.a.do(ctx, http.MethodGet, "/cgi-bin/token", q, nil, &res); err != nil {
		return "", fmt.Errorf("fetch access token: %w", err)
	}
	if res.AccessToken == "" {
		return "", errors.New("fetch access token: empty token")
	}
	ttl := time.Duration(res.ExpiresIn)*time.Second - tokenMargin
	if ttl < time.Minute {
		ttl = time.Minute
	}
	if err := cache.SetContext(ctx, t.cache, t.name, res.AccessToken, ttl); err != nil {
		// The token works for this call; the next one fetches again.
		t.a.log.Warn("store access token", "err", err)
	}
	t.a.log.Info("access token refreshed", "expires_in", res.ExpiresIn)
	return res.AccessToken, nil
}

// invalidate drops tok if it is still the shared token.
func (t *tokens) invalidate(ctx context.Context, tok string) {
	if _, err := t.a.opts.Store.DeleteValue(ctx, t.name, tok); err != nil {
		t.a.log.Warn("drop refused access token", "err", err)
	}
}

// valueCache is the library's cache interface over the Store's values.
// Get and IsExist cannot return errors: a store that does not answer
// reads as "no value", which makes get try the lock, which fails the
// same way, so no replica refreshes for want of Redis.
type valueCache struct{ v Values }

func (c valueCache) GetContext(ctx context.Context, key string) any {
	v, ok, err := c.v.Value(ctx, key)
	if err != nil || !ok {
		return nil
	}
	return v
}

func (c valueCache) SetContext(ctx context.Context, key string, val any, timeout time.Duration) error {
	s, ok := val.(string)
	if !ok {
		return fmt.Errorf("cache %s: want a string value", key)
	}
	_, err := c.v.SetValue(ctx, key, s, timeout, false)
	return err
}

func (c valueCache) IsExistContext(ctx context.Context, key string) bool {
	return c.GetContext(ctx, key) != nil
}

func (c valueCache) DeleteContext(ctx context.Context, key string) error {
	_, err := c.v.DeleteValue(ctx, key, "")
	return err
}

func (c valueCache) Get(key string) any { return c.GetContext(context.Background(), key) }
func (c valueCache) Set(key string, val any, timeout time.Duration) error {
	return c.SetContext(context.Background(), key, val, timeout)
}
func (c valueCache) IsExist(key string) bool { return c.IsExistContext(context.Background(), key) }
func (c valueCache) Delete(key string) error { return c.DeleteContext(context.Background(), key) }
