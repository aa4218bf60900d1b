package records

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// demoNow is a fixed clock: 2026-03-10 10:00 in Asia/Shanghai.
var demoNow = time.Date(2026, time.March, 10, 2, 0, 0, 0, time.UTC)

func openDemo(t testing.TB) *DB {
	t.Helper()
	db, err := OpenDemo(context.Background(), demoNow)
	if err != nil {
		t.Fatalf("OpenDemo: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func demoID(t testing.TB, name string) string {
	t.Helper()
	for _, p := range Demo() {
		if p.Name == name {
			return p.ID
		}
	}
	t.Fatalf("no demo person %s", name)
	return ""
}

func TestDemoPeopleAreValidAndVaried(t *testing.T) {
	cats := map[Category]int{}
	for _, p := range Demo() {
		if _, err := CheckID(p.ID); err != nil {
			t.Errorf("%s: CheckID: %v", p.Name, err)
		}
		if !validMobile(p.Phone) {
			t.Errorf("%s: phone not a mobile number", p.Name)
		}
		if p.Illustrates == "" || p.IllustratesZH == "" {
			t.Errorf("%s: says nothing about what it illustrates", p.Name)
		}
		cats[p.Category]++
	}
	if len(Demo()) < 6 || cats[Employee] == 0 || cats[Flexible] == 0 || cats[Resident] == 0 {
		t.Errorf("demo has %d people, categories %v", len(Demo()), cats)
	}
}

func TestDemoGaps(t *testing.T) {
	db := openDemo(t)
	ctx := context.Background()
	cur := MonthOf(demoNow) // 2026-03
	type want struct {
		name  string
		ins   Insurance
		gaps  []Month // From of each gap
		sizes []int
	}
	for _, w := range []want{
		{"张三", Medical, nil, nil},
		{"张三", Maternity, nil, nil},
		{"李四", Pension, []Month{cur.Add(-3)}, []int{1}},
		{"王五", Injury, []Month{cur.Add(-2)}, []int{2}},
		{"赵六", Medical, []Month{cur.Add(-10)}, []int{5}},
		{"赵六", Unemployment, nil, nil}, // never joined: no gap
		{"钱七", Medical, []Month{cur.Add(-1)}, []int{1}},
		{"孙八", Medical, []Month{{2025, time.January}}, []int{14}},
		{"周九", Medical, nil, nil},
	} {
		gaps, err := db.Gaps(ctx, demoID(t, w.name), w.ins, demoNow)
		if err != nil {
			t.Fatalf("%s %s: %v", w.name, w.ins, err)
		}
		var from []Month
		var sizes []int
		for _, g := range gaps {
			from = append(from, g.From)
			sizes = append(sizes, len(g.Months))
		}
		if !cmp.Equal(from, w.gaps) || !cmp.Equal(sizes, w.sizes) {
			t.Errorf("%s %s: gaps from %v sizes %v, want %v %v", w.name, w.ins, from, sizes, w.gaps, w.sizes)
		}
	}

	// 李四's single gap is in Shanghai's (example) 3-month window until exactly now.
	g, _ := db.Gaps(ctx, demoID(t, "李四"), Medical, demoNow)
	if !g[0].InWindow || g[0].WindowEnds != cur || !g[0].Estimated || len(g[0].Unpaid) != 0 {
		t.Errorf("李四 gap = %+v, want in window ending %v, estimated, nothing unpaid", g[0], cur)
	}
	// Next month it is out of the window.
	g, _ = db.Gaps(ctx, demoID(t, "李四"), Medical, demoNow.AddDate(0, 1, 0))
	if g[0].InWindow {
		t.Errorf("李四 gap one month later still in window: %+v", g[0])
	}
	// 王五's arrears have amounts of their own: 2 months × (200+800) yuan... medical 2%+8% of 7000.
	g, _ = db.Gaps(ctx, demoID(t, "王五"), Medical, demoNow)
	if g[0].Estimated || g[0].Owed != 2*70000 || len(g[0].Unpaid) != 2 || !g[0].InWindow || !g[0].WindowEnds.IsZero() {
		t.Errorf("王五 gap = %+v, want 1400.00 owed from own rows, Fujian: no window", g[0])
	}
	// 孙八 (Beijing example rule, 3 months) is long out of the window.
	g, _ = db.Gaps(ctx, demoID(t, "孙八"), Medical, demoNow)
	if g[0].InWindow {
		t.Errorf("孙八 gap in window: %+v", g[0])
	}
}

func TestDemoBalance(t *testing.T) {
	db := openDemo(t)
	ctx := context.Background()
	bal, mv, err := db.Balance(ctx, demoID(t, "张三"), 3)
	if err != nil {
		t.Fatal(err)
	}
	// 12 credits of 200.00, two identical purchases of 36.50 and one of 120.00.
	if want := Cents(12*20000 - 2*3650 - 12000); bal != want {
		t.Errorf("balance = %v, want %v", bal, want)
	}
	wantMv := []Movement{
		{time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC), 20000, "个人账户划入"},
		{time.Date(2026, 2, 8, 0, 0, 0, 0, time.UTC), -12000, "门诊个人账户支付"},
		{time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC), -3650, "药店购药"},
	}
	if diff := cmp.Diff(wantMv, mv); diff != "" {
		t.Errorf("last movements, newest first (-want +got):\n%s", diff)
	}
	bal, mv, err = db.Balance(ctx, demoID(t, "孙八"), 5)
	if err != nil || bal != 0 || len(mv) != 0 {
		t.Errorf("resident balance = %v, %v, %v; want 0, none, nil", bal, mv, err)
	}
	if _, _, err := db.Balance(ctx, "110105198803120000", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown person: err = %v, want ErrNotFound", err)
	}
}
