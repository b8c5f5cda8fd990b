package runsc

import (
	"reflect"
	"testing"
)

func TestCheckpointOptsArgs(t *testing.T) {
	for _, tc := range []struct {
		o    CheckpointOpts
		want []string
	}{
		{CheckpointOpts{ImagePath: "/img"}, []string{"--image-path=/img"}},
		{CheckpointOpts{ImagePath: "/img", WorkPath: "/w", LeaveRunning: true}, []string{"--image-path=/img", "--work-path=/w", "--leave-running"}},
	} {
		if got := tc.o.args(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: got %q want %q", tc.o, got, tc.want)
		}
	}
}

func TestRestoreOptsArgs(t *testing.T) {
	o := &RestoreOpts{ImagePath: "/img", CreateOpts: CreateOpts{PidFile: "/b/init.pid", UserLog: "/u"}}
	got := o.args("/b")
	want := []string{"--bundle=/b", "--image-path=/img", "--detach", "--pid-file=/b/init.pid", "--user-log=/u"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestCheckpointsInPlace(t *testing.T) {
	for version, want := range map[string]bool{
		"0.0~20221219.0":                    false, // Debian bookworm
		"release-20221219.0":                false,
		"0.0~20221012.0":                    false,
		"0.0.0-20260905035102-160fafc42237": true, // gVisor's Go module
		"release-20240101.0":                true,
		"0.0~20240101.0":                    true,
		"unknown":                           false,
		"":                                  false,
	} {
		f := NewFeatures("/bin/runsc", version, nil, nil)
		if got := f.CheckpointsInPlace(); got != want {
			t.Errorf("%q: CheckpointsInPlace = %v, want %v", version, got, want)
		}
	}
	var f *Features
	if f.CheckpointsInPlace() {
		t.Error("nil Features: CheckpointsInPlace = true")
	}
}
