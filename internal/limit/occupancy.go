package limit

import "time"

// occupancySample is how many sets Occupancy looks at: all of a small
// table, an even sample of a large one, so a metrics scrape costs at most
// under a millisecond whatever limit.table_bytes is.
const occupancySample = 1 << 14

// Occupancy estimates how full the rate table is at now: live is the
// number of keys whose state would be lost if they were pushed out (a
// bucket not yet full again, or a ban the source has run into since it
// was imposed), slots the table's capacity. The
// estimate is exact for tables of up to 16,384 sets (2 MiB) and
// scaled from an even sample of that many sets above. It takes each
// sampled set's lock in turn, as a request does, and does not allocate.
func (l *Limiter) Occupancy(now time.Time) (live, slots int) {
	t := l.ns(now)
	n := len(l.sets)
	step := max(n/occupancySample, 1)
	seen := 0
	for i := 0; i < n; i += step {
		s := &l.sets[i]
		s.lock()
		for w := range ways {
			if s.tag[w] != 0 && (s.tag[w]&bannedBit != 0 || s.tat[w] > t) {
				live++
			}
		}
		s.unlock()
		seen++
	}
	if seen > 0 && seen < n {
		live = int(int64(live) * int64(n) / int64(seen))
	}
	return live, n * ways
}
