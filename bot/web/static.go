package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed static/index.html static/app.js static/app.css
var files embed.FS

// static holds the page and its files with their content hashes. The page
// names each file with its hash (/static/app.js?v=…), so a file can be
// cached for a year and a new release is fetched at once; the page itself
// is revalidated every time (its ETag makes that a 304).
type static struct {
	page  asset
	files map[string]asset
}

type asset struct {
	body  []byte
	ctype string
	etag  string
	hash  string
}

func newAsset(body []byte, ctype string) asset {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:8])
	return asset{body: body, ctype: ctype, etag: `"` + h + `"`, hash: h}
}

func newStatic() *static {
	s := &static{files: map[string]asset{}}
	for name, ctype := range map[string]string{
		"app.js":  "text/javascript; charset=utf-8",
		"app.css": "text/css; charset=utf-8",
	} {
		b, err := files.ReadFile("static/" + name)
		if err != nil {
			panic("web: embedded " + name + " missing: " + err.Error()) // a build without the files
		}
		s.files[name] = newAsset(b, ctype)
	}
	page, err := files.ReadFile("static/index.html")
	if err != nil {
		panic("web: embedded index.html missing: " + err.Error())
	}
	for name, f := range s.files {
		page = bytes.ReplaceAll(page, []byte(`"/static/`+name+`"`), []byte(`"/static/`+name+`?v=`+f.hash+`"`))
	}
	s.page = newAsset(page, "text/html; charset=utf-8")
	return s
}

func (a *Adapter) servePage(w http.ResponseWriter, r *http.Request) {
	a.static.page.serve(w, r, "no-cache")
}

func (a *Adapter) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := a.static.files[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	cache := "no-cache"
	if r.URL.Query().Get("v") == f.hash {
		cache = "public, max-age=31536000, immutable"
	}
	f.serve(w, r, cache)
}

func (f asset) serve(w http.ResponseWriter, r *http.Request, cache string) {
	h := w.Header()
	h.Set("Cache-Control", cache)
	h.Set("ETag", f.etag)
	h.Set("Content-Type", f.ctype)
	// ServeContent answers If-None-Match against the ETag (304) and HEAD.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
