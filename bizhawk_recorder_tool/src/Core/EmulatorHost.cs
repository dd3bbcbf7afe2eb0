// What the session needs from an emulator. BizHawkHost (src/BizHawk) implements
// it on BizHawk's APIs; the headless test client implements it on a synthetic
// emulator. The session calls it only on the emulator's (UI) thread.
namespace SonicRL.Tool
{
    public sealed class EmulatorInfo
    {
        public string Emulator = "";
        public string Core = "";
        public string System = "";
        public string RomName = "";
        public string RomHash = "";
        /// <summary>Player 1's button names in mask bit order (ButtonLayout: the core's controller definition).</summary>
        public string[] Buttons = new string[0];
        public int RamSize;
        /// <summary>The memory domain the RAM is read from (RamDomainTable), and its byte order in words.</summary>
        public string RamDomain = "";
        public string RamByteOrder = "";
        public PixelFormat PixelFormat = PixelFormat.Bgra32;
        public bool CanLoadStartState;
        /// <summary>A problem with the loaded core or ROM the user should know about, or "".</summary>
        public string Warning = "";

        /// <summary>What the tool window shows: system, core, the RAM domain it chose, and the buttons.</summary>
        public string Summary()
        {
            string order = RamByteOrder.Length > 0 ? ", " + RamByteOrder : "";
            return $"{System} on {Core}: RAM from domain \"{RamDomain}\" ({RamSize} bytes{order}); "
                   + $"{Buttons.Length} buttons for player 1 ({string.Join(", ", Buttons)})";
        }
    }

    public interface IEmulatorHost
    {
        EmulatorInfo Describe();

        /// <summary>Frame counter of the frame last emulated (BizHawk: Emulation.FrameCount()).</summary>
        long FrameCount { get; }

        /// <summary>Current screen size (it can change mid-run).</summary>
        void ScreenSize(out int width, out int height);

        /// <summary>A copy of the screen and main RAM now; screen/ram false leaves them out.</summary>
        Observation Capture(bool screen, bool ram);

        /// <summary>Buttons fed to the core on the frame just emulated, as a mask.</summary>
        uint PressedMask();

        /// <summary>Hold these buttons on the next emulated frame (BizHawk clears overrides every frame).</summary>
        void SetButtons(uint mask);

        /// <summary>Stop overriding the controller (give it back to the player).</summary>
        void ReleaseButtons();

        /// <summary>Load the start state; false (with a reason) when there is none.</summary>
        bool LoadStartState(out string error);

        /// <summary>The bytes of the emulator state now (the episode's start state), or an empty array.</summary>
        byte[] StartStateBytes();

        bool IsPaused { get; }
        void Pause();
        void Unpause();
    }
}
