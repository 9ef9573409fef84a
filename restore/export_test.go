package restore

// SetPhaseHook sets the hook a run calls at each phase, for tests of the
// external package.
func SetPhaseHook(f func(string)) { phaseHook = f }
