package pods

// SetBeforeOpen makes f run between Scan listing a namespace file and opening it, until the
// returned function restores the default.
func SetBeforeOpen(f func(path string)) (restore func()) {
	old := beforeOpen
	beforeOpen = f
	return func() { beforeOpen = old }
}
