// Marks one symbol-version requirement of an ELF shared library as weak, so that the dynamic
// loader accepts a host libstdc++ that lacks that version. Used by the build (Directory.Build.targets,
// through RoslynCodeTaskFactory) and by the library's Native loader; it has no dependency beyond the BCL.
//
// Why: TorchSharp 0.107.0's libLibTorchSharp.so lists GLIBCXX_3.4.32 in .gnu.version_r, although the
// only symbol of that version (std::ios_base_library_init) is never relocated. Debian 12's libstdc++
// stops at GLIBCXX_3.4.30, so the loader refuses the library. Setting VER_FLG_WEAK (0x2) in that
// entry's vna_flags turns the hard failure into nothing at all.
using System;
using System.IO;
using System.Text;

namespace MlNetDeep.Build
{
    internal enum ElfPatchResult { Patched, AlreadyWeak, VersionNotNeeded, NotElf64 }

    internal static class ElfVersionNeedPatcher
    {
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlgWeak = 0x2;

        /// <summary>True when the host's libstdc++ provides <paramref name="version"/> (e.g. GLIBCXX_3.4.32).</summary>
        public static bool HostLibStdCxxHas(string version)
        {
            foreach (var path in LibStdCxxCandidates())
            {
                if (!File.Exists(path)) continue;
                var bytes = File.ReadAllBytes(path);
                return IndexOf(bytes, Encoding.ASCII.GetBytes(version + "\0")) >= 0;
            }
            // No libstdc++ where we look (not Linux, or an unusual layout): nothing to fix here.
            return true;
        }

        private static string[] LibStdCxxCandidates() => new[]
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6",
            "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/libstdc++.so.6",
        };

        /// <summary>Sets VER_FLG_WEAK on the version requirement named <paramref name="version"/>, in place.</summary>
        public static ElfPatchResult MakeVersionNeedWeak(string file, string version)
        {
            var data = File.ReadAllBytes(file);
            var result = MakeVersionNeedWeak(data, version);
            if (result == ElfPatchResult.Patched)
            {
                // A new file, not a write into the old one: the old one may be a hard link into the NuGet cache.
                var temp = file + ".patching";
                File.WriteAllBytes(temp, data);
                File.Delete(file);
                File.Move(temp, file);
            }
            return result;
        }

        public static ElfPatchResult MakeVersionNeedWeak(byte[] data, string version)
        {
            // e_ident: 0x7f 'E' 'L' 'F', class 2 (64-bit), data 1 (little endian)
            if (data.Length < 64 || data[0] != 0x7f || data[1] != (byte)'E' || data[2] != (byte)'L' || data[3] != (byte)'F'
                || data[4] != 2 || data[5] != 1)
                return ElfPatchResult.NotElf64;

            ulong shoff = U64(data, 0x28);
            int shentsize = U16(data, 0x3a), shnum = U16(data, 0x3c);
            for (int i = 0; i < shnum; i++)
            {
                int sh = checked((int)shoff + i * shentsize);
                if (U32(data, sh + 4) != ShtGnuVerneed) continue;
                int offset = checked((int)U64(data, sh + 0x18));
                uint link = U32(data, sh + 0x28);
                int strtab = checked((int)U64(data, checked((int)shoff + (int)link * shentsize) + 0x18));

                int need = offset;
                while (true)
                {
                    int count = U16(data, need + 2);
                    int aux = need + (int)U32(data, need + 8);
                    for (int j = 0; j < count; j++)
                    {
                        string name = CString(data, strtab + (int)U32(data, aux + 8));
                        if (name == version)
                        {
                            ushort flags = U16(data, aux + 4);
                            if ((flags & VerFlgWeak) != 0) return ElfPatchResult.AlreadyWeak;
                            flags |= VerFlgWeak;
                            data[aux + 4] = (byte)flags;
                            data[aux + 5] = (byte)(flags >> 8);
                            return ElfPatchResult.Patched;
                        }
                        uint nextAux = U32(data, aux + 12);
                        if (nextAux == 0) break;
                        aux += (int)nextAux;
                    }
                    uint next = U32(data, need + 12);
                    if (next == 0) break;
                    need += (int)next;
                }
            }
            return ElfPatchResult.VersionNotNeeded;
        }

        private static ushort U16(byte[] d, int o) => (ushort)(d[o] | d[o + 1] << 8);
        private static uint U32(byte[] d, int o) => (uint)(d[o] | d[o + 1] << 8 | d[o + 2] << 16 | d[o + 3] << 24);
        private static ulong U64(byte[] d, int o) => U32(d, o) | (ulong)U32(d, o + 4) << 32;

        private static string CString(byte[] d, int o)
        {
            int end = o;
            while (end < d.Length && d[end] != 0) end++;
            return Encoding.ASCII.GetString(d, o, end - o);
        }

        private static int IndexOf(byte[] haystack, byte[] needle)
        {
            for (int i = 0; i <= haystack.Length - needle.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && haystack[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }
    }

#if !MLNETDEEP_LIBRARY
    /// <summary>MSBuild task: patches every libLibTorchSharp.so under the given folders when the host needs it.</summary>
    public class PatchLibTorchSharp : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required]
        public string[] Folders { get; set; } = Array.Empty<string>();

        public string Version { get; set; } = "GLIBCXX_3.4.32";

        public override bool Execute()
        {
            if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Linux) || ElfVersionNeedPatcher.HostLibStdCxxHas(Version)) return true;
            foreach (var folder in Folders)
            {
                if (string.IsNullOrEmpty(folder) || !Directory.Exists(folder)) continue;
                foreach (var lib in Directory.EnumerateFiles(folder, "libLibTorchSharp.so", SearchOption.AllDirectories))
                {
                    var result = ElfVersionNeedPatcher.MakeVersionNeedWeak(lib, Version);
                    if (result == ElfPatchResult.Patched)
                        Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High, $"MlNetDeep: marked {Version} weak in {lib}");
                }
            }
            return true;
        }
    }
#endif
}
