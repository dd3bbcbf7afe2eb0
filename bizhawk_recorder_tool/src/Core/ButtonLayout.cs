// Player 1's buttons, read off a core's controller definition (BizHawk:
// IEmulator.ControllerDefinition.BoolButtons), so the tool serves any system
// without a hard-coded pad (issue 9 item 6).
//
// Most BizHawk cores name player 1's buttons "P1 Up", "P1 A", ... next to other
// players' ("P2 ...") and console controls without a prefix ("Power", "Reset",
// the Atari 2600's "Select"); IJoypadApi called with controller 1 adds and drops
// the "P1 " prefix itself. A few single-player cores name their buttons without a
// prefix ("Up", "A", "Power"); then those are player 1's and the joypad API is
// called with no controller number and the full names. Either way the power and
// reset buttons are left out: a policy must not switch the console off.
//
// HELLO sends the names without the prefix, in the definition's own order (stable
// for a core and its controller settings); the recorder matches them to the
// profile by name, case-insensitively, so the order carries no meaning beyond the
// bits of this session's masks.
using System.Collections.Generic;
using System.Text.RegularExpressions;

namespace SonicRL.Tool
{
    public sealed class ButtonLayout
    {
        const string Player1 = "P1 ";
        static readonly Regex AnyPlayer = new Regex(@"^P[0-9]+ ");
        static readonly HashSet<string> ConsoleControls = new HashSet<string> { "Power", "Reset" };

        ButtonLayout(string[] names, bool prefixed, int leftOut)
        {
            Names = names;
            Prefixed = prefixed;
            LeftOut = leftOut;
        }

        /// <summary>HELLO's button names, in mask bit order (at most Limits.MaxButtons).</summary>
        public string[] Names { get; }

        /// <summary>The core names them "P1 ..." (use controller 1 with IJoypadApi); else full names, no controller.</summary>
        public bool Prefixed { get; }

        /// <summary>Player 1 buttons past the protocol's 32 that could not be sent.</summary>
        public int LeftOut { get; }

        public static ButtonLayout ForPlayer1(IEnumerable<string> boolButtons)
        {
            List<string> prefixed = new List<string>();
            List<string> bare = new List<string>();
            foreach (string b in boolButtons)
            {
                if (b.StartsWith(Player1)) Add(prefixed, b.Substring(Player1.Length));
                else if (!AnyPlayer.IsMatch(b)) Add(bare, b);
            }
            List<string> names = prefixed.Count > 0 ? prefixed : bare;
            int leftOut = 0;
            if (names.Count > Limits.MaxButtons)
            {
                leftOut = names.Count - Limits.MaxButtons;
                names.RemoveRange(Limits.MaxButtons, leftOut);
            }
            return new ButtonLayout(names.ToArray(), prefixed.Count > 0, leftOut);
        }

        static void Add(List<string> names, string name)
        {
            if (!ConsoleControls.Contains(name) && !names.Contains(name)) names.Add(name);
        }
    }
}
