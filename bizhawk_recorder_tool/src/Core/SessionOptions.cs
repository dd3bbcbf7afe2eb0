// What the user (the tool window, the headless client's flags) chooses for a session.
namespace SonicRL.Tool
{
    public sealed class SessionOptions
    {
        public string Url = "ws://127.0.0.1:8765";
        public string Token = "";
        public Mode Mode = Mode.Any;
        /// <summary>Game profile id wanted, or "" to let the recorder choose.</summary>
        public string Game = "";
        public string ClientName = "sonic-rl BizHawk tool";
        public string ClientVersion = "0.1.0";
        /// <summary>STEP messages that may wait to be sent (about 0.35 MB each for a 320x224 screen and 64 KiB of RAM).</summary>
        public int QueueCapacity = 64;
        public int ConnectTimeoutMs = 5000;
        public int HandshakeTimeoutMs = 10000;
        /// <summary>How long a frame callback may wait for ACTION before pausing the emulator instead.</summary>
        public int LockstepSpinMs = 20;
        /// <summary>Reconnect after a lost connection, with doubling delays.</summary>
        public bool Reconnect = true;
        public int ReconnectInitialMs = 500;
        public int ReconnectMaxMs = 8000;
        /// <summary>Refuse to send a message over 16 MiB (the recorder would close with 1009).</summary>
        public bool CheckSizeBeforeSending = true;
    }
}
