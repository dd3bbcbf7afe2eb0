// `SonicRecHeadless.exe --codec-check`: prints the C# encoding of the examples in
// docs/protocol.md, then reads hex messages (one per line, encoded by
// recorder/protocol.py) from stdin, decodes and re-encodes each, and prints the
// result; tests/bizhawk/test_csharp_client.py compares both with Python's bytes.
using System;
using System.Text;
using SonicRL.Tool;

namespace SonicRL.Tool.Headless
{
    public static class CodecSelfTest
    {
        static string Hex(byte[] b)
        {
            StringBuilder sb = new StringBuilder(b.Length * 2);
            foreach (byte x in b) sb.Append(x.ToString("x2"));
            return sb.ToString();
        }

        static byte[] Unhex(string s)
        {
            byte[] b = new byte[s.Length / 2];
            for (int i = 0; i < b.Length; i++) b[i] = Convert.ToByte(s.Substring(2 * i, 2), 16);
            return b;
        }

        public static int Run()
        {
            Hello hello = new Hello
            {
                ClientName = "c", ClientVersion = "1", Emulator = "e", Core = "core", System = "GEN",
                RomName = "rom", RomHash = "abc", Game = "x", Mode = Mode.Policy, ScreenWidth = 320, ScreenHeight = 224,
                PixelFormat = PixelFormat.Rgb24, RamSize = 65536, Buttons = new[] { "B", "A" }, Token = "t",
                Capabilities = Capability.LoadStartState | Capability.SendStartState,
            };
            Console.WriteLine("hello " + Hex(Codec.Encode(hello)));
            Step step = new Step
            {
                Seq = 5, Frame = 100, TimeUs = 7, Buttons = new uint[] { 1, 2, 3, 4 },
                Observation = new Observation
                {
                    Width = 2, Height = 1, Format = PixelFormat.Bgra32,
                    Pixels = new byte[] { 0, 1, 2, 3, 4, 5, 6, 7 }, Ram = new byte[] { 1, 2 },
                },
            };
            Console.WriteLine("step " + Hex(Codec.Encode(step)));
            Console.WriteLine("action " + Hex(Codec.Encode(new ActionMsg { Seq = 1, Buttons = 0x80, Action = 1, PolicyVersion = 0 })));
            Console.WriteLine("error " + Hex(Codec.Encode(new ErrorMsg { Code = 4004, Text = "bad token" })));
            Console.WriteLine("dropped " + Hex(Codec.Encode(new FramesDropped { FirstSeq = 9, Count = 3, FirstFrame = 40, LastFrame = 51 })));
            Console.WriteLine("status " + Hex(Codec.Encode(new StatusMsg { Episode = 2, Steps = 30, LastReward = 1.5, Return = -12.25 })));
            string line;
            while ((line = Console.In.ReadLine()) != null)
            {
                line = line.Trim();
                if (line.Length == 0) continue;
                try
                {
                    Message m = Codec.Decode(Unhex(line));
                    Console.WriteLine("roundtrip " + m.Kind + " " + Hex(Codec.Encode(m)));
                }
                catch (ProtocolException e)
                {
                    Console.WriteLine("refused " + (int)e.Code + " " + e.Message);
                }
            }
            return 0;
        }
    }
}
