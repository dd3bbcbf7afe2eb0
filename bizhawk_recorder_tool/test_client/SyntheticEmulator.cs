// A stand-in for EmuHawk + Genesis Plus GX, for the headless test client.
//
// Its screen and RAM are pure functions of (frame counter, x, size), written
// down here and re-implemented by tests/bizhawk/test_csharp_client.py, so the
// test can check every stored pixel and RAM byte. x moves with Right/Left, so
// the policy's buttons visibly change the recorded observations.
//
//   pixel (row r, col c), BGRA32:  B = (c + f) & 255,  G = (2r + x) & 255,
//                                  R = (c ^ r ^ (f >> 2)) & 255,  A = 255
//   RAM byte i (64 KiB):           (7i + f + x) & 255, except the Airstriker
//     profile variables, big-endian as in the 68000's RAM: score (0x024E, u32) = f,
//     lives (0x025A, u16) = 3, gameover (0x0266, u16) = 9.
using System;
using SonicRL.Tool;

namespace SonicRL.Tool.Headless
{
    public sealed class SyntheticEmulator : IEmulatorHost
    {
        public static readonly string[] GenesisButtons = { "Up", "Down", "Left", "Right", "A", "B", "C", "Start" };
        public const int RamSize = 65536;
        public const long StartFrame = 1000;
        const int Left = 2, Right = 3;

        long _frame = StartFrame;
        int _x;
        int _width;
        int _height;
        uint _override;
        bool _hasOverride;
        uint _lastMask;
        bool _paused;

        public SyntheticEmulator(int width, int height)
        {
            _width = width;
            _height = height;
        }

        public int X { get { return _x; } }
        public int Width { get { return _width; } }
        public int Height { get { return _height; } }
        public long LoadCount { get; private set; }

        public void Resize(int width, int height)
        {
            _width = width;
            _height = height;
        }

        /// <summary>What a "player" presses on frame f in human mode: deterministic, varied.</summary>
        public static uint HumanMask(long f)
        {
            uint h = (uint)(f * 2654435761L);
            return (h >> 13) & 0xFF;
        }

        /// <summary>One emulated frame: overrides win over the player, then are cleared (as in BizHawk).</summary>
        public void EmulateFrame()
        {
            _frame++;
            uint mask = _hasOverride ? _override : HumanMask(_frame);
            _hasOverride = false;
            if ((mask & (1u << Right)) != 0) _x++;
            if ((mask & (1u << Left)) != 0) _x--;
            _lastMask = mask;
        }

        /// <summary>Jump the frame counter as a savestate load would.</summary>
        public void LoadStateAt(long frame)
        {
            _frame = frame;
        }

        public EmulatorInfo Describe()
        {
            return new EmulatorInfo
            {
                Emulator = "sonic-rl synthetic emulator 1",
                Core = "synthetic",
                System = "GEN",
                RomName = "synthetic test ROM",
                RomHash = "",
                Buttons = GenesisButtons,
                RamSize = RamSize,
                PixelFormat = PixelFormat.Bgra32,
                CanLoadStartState = true,
            };
        }

        public long FrameCount { get { return _frame; } }

        public void ScreenSize(out int width, out int height)
        {
            width = _width;
            height = _height;
        }

        public Observation Capture(bool screen, bool ram)
        {
            Observation o = new Observation();
            if (screen)
            {
                o.Width = _width;
                o.Height = _height;
                o.Format = PixelFormat.Bgra32;
                byte[] px = new byte[_width * _height * 4];
                int f = (int)(_frame & 0x7FFFFFFF);
                int i = 0;
                for (int r = 0; r < _height; r++)
                {
                    for (int c = 0; c < _width; c++)
                    {
                        px[i++] = (byte)(c + f);
                        px[i++] = (byte)(2 * r + _x);
                        px[i++] = (byte)(c ^ r ^ (f >> 2));
                        px[i++] = 255;
                    }
                }
                o.Pixels = px;
            }
            if (ram)
            {
                byte[] mem = new byte[RamSize];
                int f = (int)(_frame & 0x7FFFFFFF);
                for (int i = 0; i < RamSize; i++) mem[i] = (byte)(7 * i + f + _x);
                uint score = (uint)_frame;
                mem[0x024E] = (byte)(score >> 24);
                mem[0x024F] = (byte)(score >> 16);
                mem[0x0250] = (byte)(score >> 8);
                mem[0x0251] = (byte)score;
                mem[0x025A] = 0; mem[0x025B] = 3;
                mem[0x0266] = 0; mem[0x0267] = 9;
                o.Ram = mem;
            }
            return o;
        }

        public uint PressedMask() { return _lastMask; }

        public void SetButtons(uint mask)
        {
            _override = mask;
            _hasOverride = true;
        }

        public void ReleaseButtons() { _hasOverride = false; }

        public bool LoadStartState(out string error)
        {
            _frame = StartFrame;
            _x = 0;
            LoadCount++;
            error = "";
            return true;
        }

        public byte[] StartStateBytes()
        {
            // The current state, as a BizHawk savestate would hold it: frame counter and x.
            byte[] b = new byte[16];
            Array.Copy(BitConverter.GetBytes(_frame), 0, b, 0, 8);
            Array.Copy(BitConverter.GetBytes((long)_x), 0, b, 8, 8);
            return b;
        }

        public bool IsPaused { get { return _paused; } }
        public void Pause() { _paused = true; }
        public void Unpause() { _paused = false; }
    }
}
