// IEmulatorHost on BizHawk's APIs. Uses only BizHawk.Client.Common,
// BizHawk.Emulation.Common and BizHawk.Common (checked against the 2.9.1
// assemblies; see ../shared facts in docs/bizhawk.md). Every call happens on
// EmuHawk's UI thread, from the form's frame callbacks or its timer.
using System;
using System.Collections.Generic;
using System.IO;
using BizHawk.Client.Common;
using BizHawk.Emulation.Common;
using SonicRL.Tool;

namespace SonicRL.Tool.BizHawk
{
    public sealed class BizHawkHost : IEmulatorHost
    {
        /// <summary>Genesis pad buttons in mask bit order; X, Y, Z, Mode only on a 6-button pad.</summary>
        static readonly string[] GenesisOrder = { "Up", "Down", "Left", "Right", "A", "B", "C", "Start", "X", "Y", "Z", "Mode" };

        /// <summary>Genesis Plus GX's main RAM: 64 KiB in the 68000's byte order ($FFxxxx = offset xxxx).</summary>
        public const string GenesisRamDomain = "68K RAM";

        readonly ApiContainer _api;
        readonly IVideoProvider _video;
        readonly IEmulator _emulator;
        readonly string _startStatePath;
        readonly int _startSlot;
        string[] _buttons;
        string _ramDomain;
        int _ramSize;
        uint _appliedMask;
        bool _overriding;

        /// <param name="startStatePath">Savestate file loaded on RESET; "" to use startSlot.</param>
        /// <param name="startSlot">Savestate slot 1-10 loaded on RESET when no file is given.</param>
        public BizHawkHost(ApiContainer api, IVideoProvider video, IEmulator emulator, string startStatePath, int startSlot)
        {
            _api = api;
            _video = video;
            _emulator = emulator;
            _startStatePath = startStatePath ?? "";
            _startSlot = startSlot;
            ResolveButtonsAndRam();
        }

        /// <summary>A problem with the loaded core/ROM the user should know about, or "".</summary>
        public string Warning { get; private set; }

        void ResolveButtonsAndRam()
        {
            Warning = "";
            IReadOnlyDictionary<string, object> pad = _api.Joypad.Get(1);
            List<string> names = new List<string>();
            foreach (string b in GenesisOrder)
                if (pad.ContainsKey(b)) names.Add(b);
            if (names.Count == 0)
            {
                // Not a Genesis pad: send whatever the core calls its player-1 buttons, in a fixed order.
                foreach (string b in pad.Keys)
                    if (pad[b] is bool && names.Count < Limits.MaxButtons) names.Add(b);
                names.Sort(StringComparer.Ordinal);
                Warning = "this core has no Genesis pad; load the ROM with the Genesis Plus GX core";
            }
            _buttons = names.ToArray();

            // Name the domain: the default one is the system bus when the core has one.
            _ramDomain = GenesisRamDomain;
            bool found = false;
            foreach (string d in _api.Memory.GetMemoryDomainList())
                if (d == GenesisRamDomain) found = true;
            if (!found)
            {
                _ramDomain = _api.Memory.MainMemoryName;
                Warning = "no \"68K RAM\" memory domain (core " + CoreName() + "); use the Genesis Plus GX core for Genesis games";
            }
            _ramSize = (int)Math.Min(_api.Memory.GetMemoryDomainSize(_ramDomain), (uint)Limits.MaxRamBytes);
        }

        string CoreName()
        {
            try
            {
                CoreAttribute a = _emulator != null ? _emulator.Attributes() : null;
                return a != null ? a.CoreName : "unknown core";
            }
            catch (Exception)
            {
                return "unknown core";
            }
        }

        public EmulatorInfo Describe()
        {
            IGameInfo game = _api.Emulation.GetGameInfo();
            return new EmulatorInfo
            {
                Emulator = "BizHawk " + typeof(ApiContainer).Assembly.GetName().Version,
                Core = CoreName(),
                System = _api.Emulation.GetSystemId(),
                RomName = game != null ? game.Name ?? "" : "",
                RomHash = game != null ? game.Hash ?? "" : "",
                Buttons = _buttons,
                RamSize = _ramSize,
                PixelFormat = PixelFormat.Bgra32,
                CanLoadStartState = _startStatePath.Length > 0 || (_startSlot >= 1 && _startSlot <= 10),
            };
        }

        public long FrameCount { get { return _api.Emulation.FrameCount(); } }

        public void ScreenSize(out int width, out int height)
        {
            width = _video.BufferWidth;
            height = _video.BufferHeight;
        }

        public Observation Capture(bool screen, bool ram)
        {
            Observation o = new Observation();
            if (screen)
            {
                // The core hands out its live array: copy it now, before the next frame.
                int[] live = _video.GetVideoBuffer();
                int w = _video.BufferWidth, h = _video.BufferHeight;
                int n = Math.Min(w * h, live.Length);
                byte[] px = new byte[w * h * 4];
                // int 0xAARRGGBB on a little-endian CPU is B, G, R, A in memory: the
                // BGRA32 format HELLO declares, so it goes out unconverted.
                Buffer.BlockCopy(live, 0, px, 0, n * 4);
                o.Width = w;
                o.Height = h;
                o.Format = PixelFormat.Bgra32;
                o.Pixels = px;
            }
            if (ram)
            {
                // "68K RAM" shows the 68000's own (big-endian) byte order, which is the
                // order docs/protocol.md asks for; no swapping here.
                IReadOnlyList<byte> bytes = _api.Memory.ReadByteRange(0, _ramSize, _ramDomain);
                byte[] mem = new byte[bytes.Count];
                for (int i = 0; i < mem.Length; i++) mem[i] = bytes[i];
                o.Ram = mem;
            }
            return o;
        }

        public uint PressedMask()
        {
            // What the core was fed on the frame just emulated (player, movie or override).
            IReadOnlyDictionary<string, object> pad = _api.Joypad.GetWithMovie(1);
            uint mask = 0;
            for (int i = 0; i < _buttons.Length; i++)
            {
                object v;
                if (pad.TryGetValue(_buttons[i], out v) && v is bool && (bool)v) mask |= 1u << i;
            }
            return mask;
        }

        public void SetButtons(uint mask)
        {
            // Every button explicitly on or off, so the policy alone decides this frame.
            // BizHawk clears overrides every frame, so this runs every frame (PreFrame).
            Dictionary<string, bool> pad = new Dictionary<string, bool>();
            for (int i = 0; i < _buttons.Length; i++) pad[_buttons[i]] = (mask & (1u << i)) != 0;
            _api.Joypad.Set(pad, 1);
            _appliedMask = mask;
            _overriding = true;
        }

        public void ReleaseButtons()
        {
            if (!_overriding) return;
            foreach (string b in _buttons) _api.Joypad.Set(b, null, 1);
            _overriding = false;
        }

        public bool LoadStartState(out string error)
        {
            error = "";
            bool ok;
            if (_startStatePath.Length > 0)
            {
                if (!File.Exists(_startStatePath))
                {
                    error = "the start state file " + _startStatePath + " does not exist; choose one in the tool window";
                    return false;
                }
                ok = _api.SaveState.Load(_startStatePath, true);
            }
            else if (_startSlot >= 1 && _startSlot <= 10)
            {
                ok = _api.SaveState.LoadSlot(_startSlot, true);
            }
            else
            {
                error = "no start state chosen; pick a savestate file or slot in the tool window";
                return false;
            }
            if (!ok) error = "BizHawk could not load the start state (made with another core or ROM?)";
            return ok;
        }

        public byte[] StartStateBytes()
        {
            // The state the episode starts from is the state now (after RESET's load, or
            // wherever the player is in human mode): save it to a temporary file and send
            // its bytes, which makes the episode replayable.
            string tmp = Path.Combine(Path.GetTempPath(), "sonic-rl-start-" + Guid.NewGuid().ToString("N") + ".State");
            try
            {
                _api.SaveState.Save(tmp, true);
                if (!File.Exists(tmp)) return new byte[0];
                FileInfo f = new FileInfo(tmp);
                if (f.Length > Limits.MaxStartStateBytes) return new byte[0];
                return File.ReadAllBytes(tmp);
            }
            catch (Exception)
            {
                return new byte[0];
            }
            finally
            {
                try { File.Delete(tmp); } catch (Exception) { }
            }
        }

        public bool IsPaused { get { return _api.EmuClient.IsPaused(); } }
        public void Pause() { _api.EmuClient.Pause(); }
        public void Unpause() { _api.EmuClient.Unpause(); }

        /// <summary>The mask set by the last SetButtons (for display).</summary>
        public uint AppliedMask { get { return _appliedMask; } }
    }
}
