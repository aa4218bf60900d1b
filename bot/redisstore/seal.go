package redisstore

import (
	"encoding/json"
	"fmt"

	"github.com/shebao/shebao/bot/keyring"
)

// sealJSON encodes v and seals it for the key it is written to.
func (s *Store) sealJSON(key string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.keys.Seal(s.ad(key), b), nil
}

// openJSON decodes a value read from key into v. A sealed value is opened;
// plain JSON is what the previous release wrote, read as it is until the
// migration (or the next write) seals it. keyID is the key the value was
// sealed under, "" for plain JSON.
func (s *Store) openJSON(key string, raw []byte, v any) (keyID string, err error) {
	plain := raw
	if keyring.IsSealed(raw) {
		if plain, keyID, err = s.keys.Open(s.ad(key), raw); err != nil {
			return keyID, err
		}
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return keyID, fmt.Errorf("decode: %w", err)
	}
	return keyID, nil
}
