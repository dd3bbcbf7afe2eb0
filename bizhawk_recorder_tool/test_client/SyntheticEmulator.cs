// A stand-in for EmuHawk and a core, for the headless test client: a Genesis-like
// or an NES-like 8-bit console (SyntheticSystem).
//
// Its screen and RAM are pure functions of (frame counter, x, size), written
// down here and re-implemented by tests/bizhawk/test_csharp_client.py, so the
// test can check every stored pixel and RAM byte. x moves with Right/Left, so
// the policy's buttons visibly change the recorded observations.
//
//   pixel (row r, col c), BGRA32:  B = (c + f) & 255,  G = (2r + x) & 255,
//                                  R = (c ^ r ^ (f >> 2)) & 255,  A = 255
//   RAM byte i:                    (7i + f + x) & 255, except the system's profile
//                                  variables (SyntheticSystem)
using System;
using SonicRL.Tool;

namespace SonicRL.Tool.Headless
{
    public sealed class SyntheticEmulator : IEmulatorHost
    {
        public const long StartFrame = 1000;

        readonly SyntheticSystem _system;
        readonly ButtonLayout _pad;
        readonly string _ramDomain;
        readonly string _ramWarning;
        readonly int _left;
        readonly int _right;
        long _frame = StartFrame;
        int _x;
        int _width;
        int _height;
        uint _override;
        bool _hasOverride;
        uint _lastMask;
        bool _paused;

        public SyntheticEmulator(SyntheticSystem system, int width, int height)
        {
            _system = system;
            _width = width;
            _height = height;
            // The choices BizHawkHost makes, on this console's description.
            _pad = ButtonLayout.ForPlayer1(system.BoolButtons);
            _ramDomain = RamDomainTable.Choose(system.Id, system.DomainSizes.Keys, system.MainMemory, out _ramWarning);
            _left = Array.IndexOf(_pad.Names, "Left");
            _right = Array.IndexOf(_pad.Names, "Right");
        }

        public int X => _x;
        public int Width => _width;
        public int Height => _height;
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
            if (_right >= 0 && (mask & (1u << _right)) != 0) _x++;
            if (_left >= 0 && (mask & (1u << _left)) != 0) _x--;
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
                Core = _system.Core,
                System = _system.Id,
                RomName = "synthetic test ROM",
                RomHash = "",
                Buttons = _pad.Names,
                RamSize = _system.DomainSizes[_ramDomain],
                RamDomain = _ramDomain,
                RamByteOrder = _system.DomainByteOrders[_ramDomain],
                PixelFormat = PixelFormat.Bgra32,
                CanLoadStartState = true,
                Warning = _ramWarning,
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
                // Only the game's RAM domain has content: reading another (a wrong table entry)
                // sends zeros of that domain's size, which the recorder refuses or the test sees.
                byte[] mem = new byte[_system.DomainSizes[_ramDomain]];
                if (_ramDomain == _system.RamDomain)
                {
                    int f = (int)(_frame & 0x7FFFFFFF);
                    for (int i = 0; i < mem.Length; i++) mem[i] = (byte)(7 * i + f + _x);
                    _system.WriteVariables(mem, _frame);
                }
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
