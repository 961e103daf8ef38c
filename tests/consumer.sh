#!/usr/bin/env bash
# Builds and runs an app OUTSIDE this repository, in a temporary folder, as a user would write it:
#   consumer.sh project   references src/MlNetDeep/MlNetDeep.csproj (ProjectReference) and runs tests/Consumer/Program.cs:
#                         train a few steps, SaveDeep, LoadDeep, PredictionEngine.
#   consumer.sh package   packs MlNetDeep into a local folder feed, makes a new console app that takes it by
#                         PackageReference, and runs the README's usage example pasted as its Program.cs.
# Either mode then builds and runs a second app whose first call is not a trainer's (tests/Consumer/FirstCall) and a
# third that trains from an image folder (tests/Consumer/Images: PNGs drawn with the app's SkiaSharp, read through
# ImageFolder and ML.NET's image transforms).
#   consumer.sh <mode> <ML.NET version>   the apps also reference Microsoft.ML, Microsoft.ML.ImageAnalytics,
#                         Microsoft.ML.OnnxTransformer and Microsoft.ML.FastTree at that version, as an app on that
#                         ML.NET does, and the image app checks that this ML.NET is the one it ran on
#                         (docs/packaging.md: the supported versions).
# Fails when the library does not build, pack, restore or load in a consumer's app (e.g. TorchSharp's native shim on
# Debian 12). Prints "consumer (<mode>[, ML.NET <version>]): ok" on success.
set -euo pipefail
mode=${1:-project}
mlnet=${2:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tests/local-feed.sh"
work=$(mktemp -d)
cleanup() { rm -rf "$work"; [ -n "${version:-}" ] && rm -rf "${NUGET_PACKAGES:-$HOME/.nuget/packages}/mlnetdeep/$version"; true; }
trap cleanup EXIT
# A fresh cache for the patched shim, so the load-time fix really runs.
export MLNETDEEP_NATIVE_CACHE="$work/native-cache"
mkdir -p "$work/app"
case "$mode" in
  project)
    cp "$repo/tests/Consumer/Program.cs" "$work/app/"
    reference="<ProjectReference Include=\"$repo/src/MlNetDeep/MlNetDeep.csproj\" />"
    expect='^predicted '
    ;;
  package)
    pack_to_local_feed "$work/app"
    # The README's usage example, as a user pastes it into a new console app.
    awk '/<!-- usage-example:begin -->/{on=1; next} /<!-- usage-example:end -->/{on=0} on' "$repo/README.md" \
      | sed '/^```/d' > "$work/app/Program.cs"
    [ -s "$work/app/Program.cs" ] || { echo "README.md has no usage example between the usage-example markers" >&2; exit 1; }
    reference="<PackageReference Include=\"MlNetDeep\" Version=\"$version\" />"
    expect='^predicted '
    ;;
  *) echo "usage: $0 project|package [ML.NET version]" >&2; exit 2 ;;
esac
if [ -n "$mlnet" ]; then
  for component in Microsoft.ML Microsoft.ML.ImageAnalytics Microsoft.ML.OnnxTransformer Microsoft.ML.FastTree; do
    reference="$reference<PackageReference Include=\"$component\" Version=\"$mlnet\" />"
  done
fi
sed "s|@REFERENCE@|$reference|" "$repo/tests/Consumer/Consumer.csproj.template" > "$work/app/Consumer.csproj"
(cd "$work/app" && dotnet build Consumer.csproj -c Release -r linux-x64 --self-contained false -o "$work/out" -v quiet -nologo)
(cd "$work" && dotnet "$work/out/Consumer.dll") | tee "$work/run.log"
grep -q "$expect" "$work/run.log"
# A second app whose first call is not a trainer's: by project reference the ONNX importer (the library prepares the
# native shim when its assembly loads), by package reference torch.tensor itself (the package's build step patches the
# shim in the app's output).
first=$([ "$mode" = project ] && echo ImporterFirst || echo TorchFirst)
mkdir -p "$work/first"
cp "$repo/tests/Consumer/FirstCall/$first.cs" "$work/first/Program.cs"
[ -f "$work/app/nuget.config" ] && cp "$work/app/nuget.config" "$work/first/"
sed "s|@REFERENCE@|$reference|" "$repo/tests/Consumer/Consumer.csproj.template" > "$work/first/First.csproj"
(cd "$work/first" && dotnet build First.csproj -c Release -r linux-x64 --self-contained false -o "$work/first-out" -v quiet -nologo)
export MLNETDEEP_NATIVE_CACHE="$work/native-cache-first"
(cd "$work" && dotnet "$work/first-out/First.dll" "$repo/tests/MlNetDeep.Tests/data/onnx/cnn.onnx") | tee "$work/first.log"
grep -q '^first call ok' "$work/first.log"
if [ "$mode" = project ]; then
  # The same app on a host where libtorch is missing: it must stop with a message that says what to install.
  rm -f "$work/out"/libtorch_cpu.so "$work/out"/runtimes/*/native/libtorch_cpu.so
  if (cd "$work" && exec dotnet "$work/out/Consumer.dll") > "$work/broken.log" 2>&1; then
    echo "the app ran without libtorch_cpu.so: the missing-library check did not fire" >&2; exit 1
  fi
  grep -q "could not be loaded" "$work/broken.log" && grep -q "TorchSharp-cpu" "$work/broken.log" \
    || { cat "$work/broken.log" >&2; echo "no message naming what to install" >&2; exit 1; }
  echo "without libtorch:"; grep -m1 "could not be loaded" "$work/broken.log"
fi
# The image-folder app.
mkdir -p "$work/images"
cp "$repo/tests/Consumer/Images/Program.cs" "$work/images/"
[ -f "$work/app/nuget.config" ] && cp "$work/app/nuget.config" "$work/images/"
sed "s|@REFERENCE@|$reference|" "$repo/tests/Consumer/Consumer.csproj.template" > "$work/images/Images.csproj"
(cd "$work/images" && dotnet build Images.csproj -c Release -r linux-x64 --self-contained false -o "$work/images-out" -v quiet -nologo)
(cd "$work" && dotnet "$work/images-out/Images.dll") | tee "$work/images.log"
grep -q '^images ok' "$work/images.log"
if [ -n "$mlnet" ]; then
  grep -q "ML.NET $mlnet," "$work/images.log" || { echo "the app did not run on ML.NET $mlnet" >&2; exit 1; }
fi
echo "consumer ($mode${mlnet:+, ML.NET $mlnet}): ok"
