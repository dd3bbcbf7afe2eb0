// When to connect again after a lost connection: doubling delays, from
// SessionOptions.ReconnectInitialMs up to ReconnectMaxMs, back to the start once
// the recorder has welcomed the tool. Only losses worth retrying are retried: a
// refusal (wrong token, unknown game, a protocol error) would only be repeated.
namespace SonicRL.Tool
{
    public sealed class ReconnectBackoff
    {
        readonly int _initialMs;
        readonly int _maxMs;
        int _delayMs;

        public ReconnectBackoff(int initialMs, int maxMs)
        {
            _initialMs = initialMs;
            _maxMs = maxMs;
            _delayMs = initialMs;
        }

        /// <summary>Connection attempts since the last success (1 during the first).</summary>
        public int Attempt { get; private set; }

        /// <summary>When the next attempt is due (clock milliseconds), once Schedule was called.</summary>
        public long DueAtMs { get; private set; }

        /// <summary>A fresh start: the user pressed Connect, or the recorder sent WELCOME.</summary>
        public void Reset()
        {
            _delayMs = _initialMs;
            Attempt = 0;
        }

        /// <summary>An attempt begins now.</summary>
        public void Attempting() => Attempt++;

        /// <summary>Plan the next attempt after the current delay; returns that delay and doubles the next one.</summary>
        public int Schedule(long nowMs)
        {
            int delay = _delayMs;
            DueAtMs = nowMs + delay;
            _delayMs = System.Math.Min(_maxMs, _delayMs * 2);
            return delay;
        }

        public bool IsDue(long nowMs) => nowMs >= DueAtMs;

        /// <summary>
        /// Whether a connection closed with this code may succeed if tried again: no close frame
        /// (1006, 1005: the recorder is not running yet, or crashed), the recorder going away
        /// (1001), failing inside (1011), or serving all the clients it takes (1013, try again later).
        /// Every other code is a refusal the user must fix.
        /// </summary>
        public static bool IsWorthRetrying(int closeCode) =>
            closeCode == 1006 || closeCode == 1005 || closeCode == 1001 || closeCode == 1011 || closeCode == 1013;
    }
}
