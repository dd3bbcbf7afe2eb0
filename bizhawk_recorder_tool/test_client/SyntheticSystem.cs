// The consoles the synthetic emulator can pretend to be, described the way a
// BizHawk core describes itself: a system id, a controller definition (with other
// players and console buttons, as cores have them), memory domains with sizes and
// byte orders, and a main memory domain. SyntheticEmulator picks player 1's
// buttons and the RAM domain from these with the tool's own ButtonLayout and
// RamDomainTable, so the headless tests run the same choices BizHawkHost makes.
//
//   gen  Genesis-like: "68K RAM" 64 KiB big-endian, a 3-button pad; the Airstriker
//        profile variables: score (0x024E, big-endian u32) = f, lives (0x025A, u16) = 3,
//        gameover (0x0266, u16) = 9.
//   nes  8-bit, NES-like: "RAM" 2 KiB little-endian (next to a 64 KiB "System Bus"),
//        an 8-button pad Up Down Left Right Select Start B A; variables: score
//        (0x0010, little-endian u16) = f & 0xFFFF, lives (0x0020, u8) = 3.
//
// Every other RAM byte i is (7i + f + x) & 255 (tests/bizhawk/test_csharp_client.py
// re-implements both layouts).
using System.Collections.Generic;

namespace SonicRL.Tool.Headless
{
    public sealed class SyntheticSystem
    {
        public string Id = "";
        public string Core = "";
        /// <summary>BizHawk-style ControllerDefinition.BoolButtons.</summary>
        public string[] BoolButtons = new string[0];
        public readonly Dictionary<string, int> DomainSizes = new Dictionary<string, int>();
        public readonly Dictionary<string, string> DomainByteOrders = new Dictionary<string, string>();
        public string MainMemory = "";
        /// <summary>The domain that holds the game's RAM (the others read as zeros).</summary>
        public string RamDomain = "";
        /// <summary>Writes the profile variables into a RAM of RamDomain's size at frame f.</summary>
        public System.Action<byte[], long> WriteVariables = (ram, f) => { };

        void Domain(string name, int size, string byteOrder)
        {
            DomainSizes[name] = size;
            DomainByteOrders[name] = byteOrder;
        }

        public static SyntheticSystem Named(string name)
        {
            if (name == "gen") return Genesis();
            if (name == "nes") return Nes();
            throw new System.FormatException($"--system must be gen or nes, not '{name}'");
        }

        static string[] Pad(string player, params string[] buttons)
        {
            string[] named = new string[buttons.Length];
            for (int i = 0; i < buttons.Length; i++) named[i] = player + buttons[i];
            return named;
        }

        static string[] Concat(params string[][] parts)
        {
            List<string> all = new List<string>();
            foreach (string[] p in parts) all.AddRange(p);
            return all.ToArray();
        }

        public static SyntheticSystem Genesis()
        {
            SyntheticSystem s = new SyntheticSystem
            {
                Id = "GEN",
                Core = "synthetic Genesis",
                BoolButtons = Concat(Pad("P1 ", "Up", "Down", "Left", "Right", "A", "B", "C", "Start"), new[] { "Power", "Reset" }),
                MainMemory = "68K RAM",
                RamDomain = "68K RAM",
            };
            s.Domain("68K RAM", 65536, "big-endian");
            s.Domain("Z80 RAM", 8192, "little-endian");
            s.Domain("M68K BUS", 16 * 1024 * 1024, "big-endian");
            s.WriteVariables = (mem, frame) =>
            {
                uint score = (uint)frame;
                mem[0x024E] = (byte)(score >> 24);
                mem[0x024F] = (byte)(score >> 16);
                mem[0x0250] = (byte)(score >> 8);
                mem[0x0251] = (byte)score;
                mem[0x025A] = 0; mem[0x025B] = 3;
                mem[0x0266] = 0; mem[0x0267] = 9;
            };
            return s;
        }

        public static SyntheticSystem Nes()
        {
            string[] pad = { "Up", "Down", "Left", "Right", "Select", "Start", "B", "A" };
            SyntheticSystem s = new SyntheticSystem
            {
                Id = "NES",
                Core = "synthetic 8-bit",
                BoolButtons = Concat(Pad("P1 ", pad), Pad("P2 ", pad), new[] { "Power", "Reset" }),
                MainMemory = "RAM",
                RamDomain = "RAM",
            };
            s.Domain("System Bus", 65536, "little-endian");
            s.Domain("RAM", 2048, "little-endian");
            s.Domain("CIRAM (nametables)", 2048, "little-endian");
            s.WriteVariables = (mem, frame) =>
            {
                mem[0x0010] = (byte)frame;
                mem[0x0011] = (byte)(frame >> 8);
                mem[0x0020] = 3;
            };
            return s;
        }
    }
}
