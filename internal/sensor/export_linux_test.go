package sensor

// For the tests of package sensor_test, which drive the UDP frontend.
var (
	NeedForTest   = need
	SettleForTest = settle
)
