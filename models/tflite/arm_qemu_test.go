package tflite

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestConformanceOnARMUnderQEMU cross-compiles this package's tests and the
// kernels' tests for linux/arm64 (NEON kernels, with and without the dot
// product extension) and linux/arm GOARM=7 (the Go kernels), and runs the
// conformance and SIMD tests under qemu-user, so the gateways' code paths are
// checked bit-exact on every run, not only on the machine that wrote them.
func TestConformanceOnARMUnderQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds and emulates; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("qemu-user needs linux")
	}
	type target struct {
		name, goarch, goarm, qemu string
		cpus                      []string // qemu -cpu values; "" = qemu's default
	}
	targets := []target{
		{"arm64", "arm64", "", "qemu-aarch64-static", []string{"", "cortex-a72"}},
		{"armv7", "arm", "7", "qemu-arm-static", []string{""}},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			qemu, err := exec.LookPath(tg.qemu)
			if err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("%s not installed; `make test` installs qemu-user-static", tg.qemu)
				}
				t.Skipf("%s not installed", tg.qemu)
			}
			dir := t.TempDir()
			for _, pkg := range []string{".", "./ops"} {
				bin := filepath.Join(dir, filepath.Base(filepath.Clean(pkg))+".test")
				if pkg == "." {
					bin = filepath.Join(dir, "tflite.test")
				}
				cmd := exec.Command("go", "test", "-c", "-o", bin, pkg)
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tg.goarch, "GOARM="+tg.goarm)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("cross-compile %s tests: %v\n%s", pkg, err, out)
				}
			}
			corpus, err := filepath.Abs(filepath.Join("..", "testdata", "tflite"))
			if err != nil {
				t.Fatal(err)
			}
			for _, cpu := range tg.cpus {
				runs := [][]string{
					{filepath.Join(dir, "tflite.test"), "-test.run", "^TestConformance$"},
					{filepath.Join(dir, "ops.test"), "-test.run", "Simd|TestEvalAllocs"},
				}
				for _, r := range runs {
					args := r
					if cpu != "" {
						args = append([]string{"-cpu", cpu}, r...)
					}
					cmd := exec.Command(qemu, args...)
					cmd.Dir = "." // the tflite tests find ../testdata/tflite from here
					cmd.Env = append(os.Environ(), "TFLITE_CORPUS="+corpus)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("%s (cpu %q) %v: %v\n%s", tg.qemu, cpu, r, err, out)
					}
				}
			}
		})
	}
}
