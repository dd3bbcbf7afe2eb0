// `SonicRecHeadless.exe --session-check`: the session rules (ClientSession) fed
// decoded messages and frames directly, with a hand-moved clock: no socket, no
// thread, no sleep. Prints one line per thing the rules did (a message to send,
// a close request, the emulator paused or not); tests/bizhawk/test_csharp_client.py
// compares the lines with what docs/protocol.md prescribes.
using System;
using System.Collections.Generic;
using SonicRL.Tool;

namespace SonicRL.Tool.Headless
{
    public static class SessionSelfTest
    {
        sealed class Probe
        {
            public long Now;
            public readonly SyntheticEmulator Emu = new SyntheticEmulator(SyntheticSystem.Nes(), 4, 2);
            public readonly ClientSession Rules;
            readonly string _name;

            public Probe(string name, Mode mode)
            {
                _name = name;
                Rules = new ClientSession(Emu, new SessionOptions { Mode = mode }, () => Now);
                Rules.Begin();
                Rules.Greet();
                Show("greet");
            }

            /// <summary>One line: what the rules want sent and closed after `what`, and whether the emulator is paused.</summary>
            public void Show(string what)
            {
                List<string> parts = new List<string>();
                foreach (Outgoing o in Rules.TakeOutgoing()) parts.Add(Describe(o));
                if (Rules.TakeCloseRequest(out var code, out _)) parts.Add($"close {code}");
                Console.WriteLine($"{_name} {what}: [{string.Join(", ", parts)}]{(Emu.IsPaused ? " paused" : "")}");
            }

            public void Receive(Message m, string what)
            {
                Rules.Receive(m);
                Show(what);
            }

            /// <summary>Emulate n frames the way RecorderSession drives them; returns whether the last sent a policy STEP.</summary>
            public bool Frames(int n, bool sendQueueHasRoom)
            {
                bool stepSent = false;
                for (int i = 0; i < n; i++)
                {
                    Rules.PreFrame();
                    Emu.EmulateFrame();
                    stepSent = Rules.PostFrame(sendQueueHasRoom);
                }
                return stepSent;
            }
        }

        static string Describe(Outgoing o)
        {
            Message m = o.Message;
            switch (m.Kind)
            {
                case Kind.Hello:
                    Hello h = (Hello)m;
                    return $"HELLO {h.System} ram {h.RamSize} buttons {string.Join("/", h.Buttons)}";
                case Kind.EpisodeBegin:
                    EpisodeBegin b = (EpisodeBegin)m;
                    return $"EPISODE_BEGIN {b.Episode} frame {b.Frame}";
                case Kind.Step:
                    Step s = (Step)m;
                    string masks = string.Join("/", Array.ConvertAll(s.Buttons, x => x.ToString()));
                    return $"STEP {s.Seq} frame {s.Frame} masks {masks}{(o.Skipped ? " skipped" : "")}";
                case Kind.FramesDropped:
                    FramesDropped d = (FramesDropped)m;
                    return $"FRAMES_DROPPED {d.FirstSeq}+{d.Count} frames {d.FirstFrame}-{d.LastFrame}";
                case Kind.Error:
                    return $"ERROR {((ErrorMsg)m).Code}";
                default:
                    return m.Kind.ToString();
            }
        }

        static Welcome Welcome(Mode mode) => new Welcome
        {
            SessionId = "s", ProfileId = "p", Mode = mode, FrameSkip = 2,
            Send = SendFlag.Screen | SendFlag.Ram | SendFlag.StartState, StepTimeoutMs = 1000,
        };

        static ActionMsg Action(uint seq, uint buttons) => new ActionMsg { Seq = seq, Buttons = buttons, Action = 1 };

        public static int Run()
        {
            // Policy mode: lockstep, then the step timeout.
            Probe p = new Probe("policy", Mode.Policy);
            p.Receive(Welcome(Mode.Policy), "welcome");
            p.Receive(new Reset { Episode = 0, LoadStartState = true }, "reset");
            p.Receive(Action(1, 8), "action 1");
            p.Rules.Tick();
            p.Show("tick");
            bool sent = p.Frames(2, true);
            p.Show($"2 frames (step sent {sent}, awaits policy {p.Rules.AwaitsPolicy})");
            p.Rules.ContinueAfterStep();
            p.Show("no action yet");
            p.Receive(Action(2, 4), "action 2");
            p.Rules.Tick();
            p.Show("tick");
            p.Frames(2, true);
            p.Rules.ContinueAfterStep();
            p.Show("2 frames, no action");
            p.Now += 1000;
            p.Rules.Tick();
            p.Show("1000 ms later");
            p.Now += 1;
            p.Rules.Tick();
            p.Show("1001 ms later");

            // An ACTION for the wrong seq is refused.
            Probe w = new Probe("wrongseq", Mode.Policy);
            w.Receive(Welcome(Mode.Policy), "welcome");
            w.Receive(new Reset { Episode = 0, LoadStartState = true }, "reset");
            w.Receive(Action(2, 8), "action 2");

            // Human mode: a full send queue skips a STEP; the next one is preceded by its report.
            Probe h = new Probe("human", Mode.Human);
            h.Receive(Welcome(Mode.Human), "welcome");
            h.Frames(2, false);
            h.Show("queue full");
            h.Frames(2, true);
            h.Show("room again");
            h.Receive(new StatusMsg { Episode = 0, Steps = 15, LastReward = 1, Return = 15 }, "status");
            h.Receive(new Stop { Reason = StopReason.Done, Text = "done" }, "stop");
            h.Receive(Action(3, 1), "action after stop");

            // Which closes the tool retries: a recorder not (yet) there, going away, failing, or full.
            List<string> retried = new List<string>();
            foreach (int code in new[] { 1000, 1001, 1005, 1006, 1009, 1011, 1013, 4000, 4003, 4005, 4007 })
                if (ReconnectBackoff.IsWorthRetrying(code)) retried.Add(code.ToString());
            Console.WriteLine($"retried: {string.Join(" ", retried)}");
            return 0;
        }
    }
}
