// IEmulatorHost on BizHawk's APIs, for any system: player 1's buttons from the
// core's controller definition (ButtonLayout), main RAM from the domain the
// RamDomainTable names for the system id, in that domain's byte order. Uses only
// BizHawk.Client.Common, BizHawk.Emulation.Common and BizHawk.Common, compiled
// against the 2.9.1 assemblies (docs/bizhawk.md, "For developers", lists the calls).
// Every call happens on EmuHawk's UI thread, from the form's frame callbacks or its timer.
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
        readonly ApiContainer _api;
        readonly IVideoProvider _video;
        readonly IEmulator _emulator;
        readonly IMemoryDomains _domains;
        readonly string _startStatePath;
        readonly int _startSlot;
        string[] _buttons;
        /// <summary>1 when the core names player 1's buttons "P1 ..." (IJoypadApi adds the prefix), else null.</summary>
        int? _controller;
        string _ramDomain;
        int _ramSize;
        string _ramByteOrder;
        string _warning;
        uint _appliedMask;
        bool _overriding;

        /// <param name="domains">The core's memory domains (for their byte order); null when the core has none.</param>
        /// <param name="startStatePath">Savestate file loaded on RESET; "" to use startSlot.</param>
        /// <param name="startSlot">Savestate slot 1-10 loaded on RESET when no file is given.</param>
        public BizHawkHost(ApiContainer api, IVideoProvider video, IEmulator emulator, IMemoryDomains domains, string startStatePath, int startSlot)
        {
            _api = api;
            _video = video;
            _emulator = emulator;
            _domains = domains;
            _startStatePath = startStatePath ?? "";
            _startSlot = startSlot;
            ResolveButtonsAndRam();
        }

        void ResolveButtonsAndRam()
        {
            List<string> warnings = new List<string>();
            ButtonLayout pad = ButtonLayout.ForPlayer1(_emulator.ControllerDefinition.BoolButtons);
            _buttons = pad.Names;
            _controller = pad.Prefixed ? 1 : (int?)null;
            if (_buttons.Length == 0) warnings.Add("this core's controller has no buttons for player 1; check Config > Controllers");
            if (pad.LeftOut > 0) warnings.Add($"player 1 has {pad.LeftOut} more buttons than the 32 the protocol carries; they are left out");

            // Name the domain: the default one is the system bus when the core has one.
            string system = _api.Emulation.GetSystemId();
            _ramDomain = RamDomainTable.Choose(system, _api.Memory.GetMemoryDomainList(), _api.Memory.MainMemoryName, out var why);
            if (why.Length > 0) warnings.Add(why);
            long size = _api.Memory.GetMemoryDomainSize(_ramDomain);
            if (size > Limits.MaxRamBytes) warnings.Add($"\"{_ramDomain}\" holds {size} bytes; only the first {Limits.MaxRamBytes} are sent");
            _ramSize = (int)Math.Min(size, Limits.MaxRamBytes);
            _ramByteOrder = ByteOrder(_domains != null && _domains.Has(_ramDomain) ? _domains[_ramDomain].EndianType : MemoryDomain.Endian.Unknown);
            _warning = string.Join("; ", warnings);
        }

        static string ByteOrder(MemoryDomain.Endian endian)
        {
            switch (endian)
            {
                case MemoryDomain.Endian.Big: return "big-endian";
                case MemoryDomain.Endian.Little: return "little-endian";
                default: return "byte order unknown";
            }
        }

        string CoreName()
        {
            try
            {
                return _emulator?.Attributes()?.CoreName ?? "unknown core";
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
                RamDomain = _ramDomain,
                RamByteOrder = _ramByteOrder,
                PixelFormat = PixelFormat.Bgra32,
                CanLoadStartState = _startStatePath.Length > 0 || (_startSlot >= 1 && _startSlot <= 10),
                Warning = _warning,
            };
        }

        public long FrameCount => _api.Emulation.FrameCount();

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
                // The console's own byte order, as the domain holds it ("68K RAM" big-endian,
                // the 8-bit consoles' RAM little-endian): docs/protocol.md asks for exactly that.
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
            IReadOnlyDictionary<string, object> pad = _api.Joypad.GetWithMovie(_controller);
            uint mask = 0;
            for (int i = 0; i < _buttons.Length; i++)
                if (pad.TryGetValue(_buttons[i], out var v) && v is bool held && held) mask |= 1u << i;
            return mask;
        }

        public void SetButtons(uint mask)
        {
            // Every button explicitly on or off, so the policy alone decides this frame.
            // BizHawk clears overrides every frame, so this runs every frame (PreFrame).
            Dictionary<string, bool> pad = new Dictionary<string, bool>();
            for (int i = 0; i < _buttons.Length; i++) pad[_buttons[i]] = (mask & (1u << i)) != 0;
            _api.Joypad.Set(pad, _controller);
            _appliedMask = mask;
            _overriding = true;
        }

        public void ReleaseButtons()
        {
            if (!_overriding) return;
            foreach (string b in _buttons) _api.Joypad.Set(b, null, _controller);
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

        public bool IsPaused => _api.EmuClient.IsPaused();
        public void Pause() => _api.EmuClient.Pause();
        public void Unpause() => _api.EmuClient.Unpause();

        /// <summary>The mask set by the last SetButtons (for display).</summary>
        public uint AppliedMask => _appliedMask;
    }
}
