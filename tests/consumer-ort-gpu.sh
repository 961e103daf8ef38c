#!/usr/bin/env bash
# An app outside the repository on the MlNetDeep package with ONNX Runtime's GPU build in place of its CPU build, as
# docs/transfer-learning.md ("Scoring on a GPU") tells a user to reference it: the library's dependency on
# Microsoft.ML.OnnxRuntime excluded, Microsoft.ML.OnnxRuntime.Gpu added. It scores models/mnist-cnn with an MLContext
# that asks for GPU 0 and checks what it says: the CUDA provider in use, or (without CUDA, as on CI) the CPU with the
# reason. The GPU build is 550 MB of packages, so .ci/run leaves this to a manual run. Prints "consumer (ONNX Runtime
# GPU build): ok" on success.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tests/local-feed.sh"
ort=$(sed -n 's:.*<OnnxRuntimeVersion>\(.*\)</OnnxRuntimeVersion>.*:\1:p' "$repo/Directory.Build.props")
work=$(mktemp -d)
version=""
cleanup() { rm -rf "$work"; [ -n "$version" ] && rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}/mlnetdeep/$version"; true; }
trap cleanup EXIT
export MLNETDEEP_NATIVE_CACHE="$work/native-cache"
mkdir -p "$work/app"
pack_to_local_feed "$work/app"
cp "$repo/tests/Consumer/OrtGpu/Program.cs" "$work/app/"
reference="<PackageReference Include=\"MlNetDeep\" Version=\"$version\" />"
reference="$reference<PackageReference Include=\"Microsoft.ML.OnnxRuntime\" Version=\"$ort\" ExcludeAssets=\"all\" />"
reference="$reference<PackageReference Include=\"Microsoft.ML.OnnxRuntime.Gpu\" Version=\"$ort\" />"
sed "s|@REFERENCE@|$reference|" "$repo/tests/Consumer/Consumer.csproj.template" > "$work/app/App.csproj"
(cd "$work/app" && dotnet build App.csproj -c Release -r linux-x64 --self-contained false -o "$work/out" -v quiet -nologo)
[ -f "$work/out/libonnxruntime_providers_cuda.so" ] || { echo "the app's output has no CUDA provider library: the GPU build was not taken" >&2; exit 1; }
(cd "$work" && dotnet "$work/out/App.dll" "$repo/models/mnist-cnn/mnist-cnn.zip") | tee "$work/run.log"
grep -q '^scored 8 rows' "$work/run.log"
if grep -q 'provider CUDAExecutionProvider' "$work/run.log"; then
  echo "ONNX Runtime scored on CUDA"
else
  # No CUDA here: the GPU build's provider cannot start, and the app says so (property and MLContext log).
  grep -q '^fallback: its CUDA provider did not start' "$work/run.log"
  grep -q '^log: .*scores on the CPU, not CUDA device 0' "$work/run.log"
fi
echo "consumer (ONNX Runtime GPU build): ok"
