// Which memory domain is "main RAM" for the recorder, per system (issue 9 item 6).
//
// BizHawk's default domain is often the system bus, not work RAM, and cores name
// their domains differently; profiles address main RAM from offset 0. The table
// names the domain for the systems whose cores are known; any other system gets
// the core's MainMemory. A core lacking the table's domain (another core for the
// same system) also falls back to MainMemory, with a warning, since a profile's
// addresses may not fit it. Bytes go out as the domain holds them: its own byte
// order (the Genesis 68K RAM big-endian, the 8-bit consoles' little-endian).
using System;
using System.Collections.Generic;
using System.Linq;

namespace SonicRL.Tool
{
    public static class RamDomainTable
    {
        /// <summary>System id (BizHawk's Emulation.GetSystemId()) to main RAM domain.</summary>
        static readonly Dictionary<string, string> BySystem = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            { "GEN", "68K RAM" },   // Genesis Plus GX: 64 KiB, big-endian; $FFxxxx is offset xxxx
            { "NES", "RAM" },       // 2 KiB at $0000-$07FF
            { "SNES", "WRAM" },     // 128 KiB at $7E0000-$7FFFFF
            { "A26", "Main RAM" },  // 128 bytes at $80-$FF
            { "GB", "WRAM" },
            { "GBC", "WRAM" },
            { "SMS", "Main RAM" },  // 8 KiB at $C000-$DFFF
        };

        /// <summary>The domain the table names for a system, or null when it has no entry.</summary>
        public static string ForSystem(string systemId)
        {
            return systemId != null && BySystem.TryGetValue(systemId, out var name) ? name : null;
        }

        /// <summary>The domain to read: the table's when this core has it, else mainMemory (warning says why, or is "").</summary>
        public static string Choose(string systemId, IEnumerable<string> domains, string mainMemory, out string warning)
        {
            warning = "";
            string wanted = ForSystem(systemId);
            if (wanted == null) return mainMemory;
            if (domains.Contains(wanted)) return wanted;
            warning = $"this core has no \"{wanted}\" memory domain, the main RAM of {systemId}; reading \"{mainMemory}\" "
                      + "instead, where a profile's addresses may not fit (try the system's other core)";
            return mainMemory;
        }
    }
}
