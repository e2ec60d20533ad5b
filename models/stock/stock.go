// Package stock ships Outpost's stock models, embedded in the binary with
// their manifests, and the streaming scorer that runs a model as its
// manifest says (Scorer).
//
//   - ae-edge: the edge model, int8 (float32 input and output,
//     QUANTIZE/DEQUANTIZE inside), a dense autoencoder of the last 32
//     readings (32-16-8-16-32, 1280 multiply-accumulates);
//   - forecast-cloud: the cloud's model (streaming detector and second
//     stage), float32, a dense forecaster of the next reading from the 64
//     before it (64-64-32-1);
//   - ae-video: the edge model for video metadata, int8, a dense
//     autoencoder of a camera's last 8 per-bucket feature vectors (10
//     features each: objects per frame by class, mean confidence, mean box
//     area, motion; 80-24-8-24-80, 4224 multiply-accumulates), run by
//     VectorScorer;
//   - ae-video-cloud: the cloud's second stage for ae-video events, float32,
//     the same trained network as ae-video before quantisation, with
//     thresholds on the residual of an event's own feature rows
//     (models/detect/secondstage.VectorConfirmer).
//
// The files are made by models/cmd/modeltool; README.md records the
// commands. Load checks each file against its manifest's sha256.
package stock

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"

	"github.com/outpost-iot/outpost/models/manifest"
	"github.com/outpost-iot/outpost/models/tflite"
)

// Names of the stock models.
const (
	Edge  = "ae-edge"
	Cloud = "forecast-cloud"
	// Video is the edge model of a camera's per-bucket detection features
	// (run it with a VectorScorer).
	Video = "ae-video"
	// VideoCloud is the cloud's second stage for ae-video events: the
	// float32 export of the network ae-video quantises, with thresholds
	// for re-scoring an event's features (secondstage.VectorConfirmer).
	VideoCloud = "ae-video-cloud"
)

//go:embed *.tflite *.json
var files embed.FS

// Files returns the embedded model and manifest bytes of a stock model.
func Files(name string) (model, manifestJSON []byte, err error) {
	if manifestJSON, err = files.ReadFile(name + ".json"); err != nil {
		return nil, nil, fmt.Errorf("stock: no model %q", name)
	}
	m, err := manifest.Parse(manifestJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("stock: %s: %w", name, err)
	}
	if model, err = files.ReadFile(m.File); err != nil {
		return nil, nil, fmt.Errorf("stock: %s: %w", name, err)
	}
	return model, manifestJSON, nil
}

// Load returns a stock model, checked against its manifest and loaded.
func Load(name string) (*manifest.Manifest, *tflite.Model, error) {
	model, mj, err := Files(name)
	if err != nil {
		return nil, nil, err
	}
	return load(name, model, mj)
}

// LoadDir loads dir/NAME.json and the model file it names, checked and
// loaded, as Load does for the embedded ones.
func LoadDir(dir, name string) (*manifest.Manifest, *tflite.Model, error) {
	mj, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return nil, nil, fmt.Errorf("stock: %w", err)
	}
	m, err := manifest.Parse(mj)
	if err != nil {
		return nil, nil, fmt.Errorf("stock: %s: %w", name, err)
	}
	model, err := os.ReadFile(filepath.Join(dir, m.File))
	if err != nil {
		return nil, nil, fmt.Errorf("stock: %w", err)
	}
	return load(name, model, mj)
}

func load(name string, model, mj []byte) (*manifest.Manifest, *tflite.Model, error) {
	m, err := manifest.Parse(mj)
	if err != nil {
		return nil, nil, fmt.Errorf("stock: %s: %w", name, err)
	}
	if err := m.Check(model); err != nil {
		return nil, nil, fmt.Errorf("stock: %w", err)
	}
	tm, err := tflite.Load(model)
	if err != nil {
		return nil, nil, fmt.Errorf("stock: %s: %w", m.ID(), err)
	}
	return m, tm, nil
}
