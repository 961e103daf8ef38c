# Sourced by the consumer scripts: packs MlNetDeep with a version of its own (so that no package cached by an earlier
# run is taken instead of this one) into "$work/feed" and writes a nuget.config naming that folder into the app folder
# given. Sets $version. Needs $repo and $work.
pack_to_local_feed() {
  local app=$1
  version="0.1.0-local.$(date +%Y%m%d%H%M%S).$$"
  dotnet pack "$repo/src/MlNetDeep/MlNetDeep.csproj" -c Release -o "$work/feed" -p:Version="$version" -nologo -v quiet
  ls "$work/feed"
  cat > "$app/nuget.config" <<CONFIG
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="local-feed" value="$work/feed" />
  </packageSources>
</configuration>
CONFIG
}
