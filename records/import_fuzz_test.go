package records

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// personalData matches an ID number or mobile number shown in full.
var personalData = regexp.MustCompile(`\d{17}[\dXx]|1[3-9]\d{9}`)

// FuzzImportRows imports arbitrary person and contribution rows. Whatever
// the bytes, an import either succeeds or fails with problems that name a
// file and line and never echo personal data, and a failed import writes
// nothing.
func FuzzImportRows(f *testing.F) {
	f.Add(idA+",测试甲,13900001111,福建省福州市,employee,示例公司\n", idA+",2026-01,medical,8000,160,640.5,paid\n")
	f.Add(idA+",测试甲,13900001111,北京市,flexible,\n", idA+",2026-13,medical,8000,160,640.5,paid\n")
	f.Add(idA+",\"引号,逗号\",13900001111,北京市,resident,\n", idB+",2026-01,medical,-1,1.234,x,paid\n")
	f.Add("110105198803120015,x,12345,北京市,boss,\n", idA+",2026-01,medical,8000,160\n")
	f.Add("\"unterminated,\n", "\ufeff"+idA+",2026-01,dental,1,1,1,maybe\n")
	f.Fuzz(func(t *testing.T, persons, contribs string) {
		db, _ := openTemp(t)
		before := counts(t, db)
		_, err := db.Import(context.Background(), ImportSources{
			Persons:       file("p.csv", personsHead+persons),
			Contributions: file("c.csv", contribHead+contribs),
		})
		if err == nil {
			return
		}
		var ie *ImportError
		if !errors.As(err, &ie) {
			t.Fatalf("import failed without an ImportError: %v", err)
		}
		if len(ie.Problems) == 0 {
			t.Fatal("ImportError with no problems")
		}
		for _, p := range ie.Problems {
			if p.File == "" || p.Line <= 0 || p.Msg == "" {
				t.Errorf("problem without a place: %+v", p)
			}
			if m := personalData.FindString(p.Msg); m != "" {
				t.Errorf("problem message shows %q: %s", m, p.Msg)
			}
		}
		if diff := cmp.Diff(before, counts(t, db)); diff != "" {
			t.Errorf("a failed import wrote rows (-before +after):\n%s", diff)
		}
	})
}
