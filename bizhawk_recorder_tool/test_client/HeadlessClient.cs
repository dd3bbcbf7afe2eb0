// Headless C# client: the tool's own session code (src/Core) driving a synthetic
// emulator, the way EmuHawk's form drives it (Poll from a timer, OnPreFrame /
// OnPostFrame around each frame). tests/bizhawk/test_csharp_client.py runs it
// against the real recorder and compares the HDF5 files with its log.
//
// Exit status: 0 when the session ended cleanly (STOP, or a requested
// disconnect), 1 when it failed (the error, in words, is on stderr), 2 on bad
// arguments, 3 when --timeout-s ran out.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Text;
using SonicRL.Tool;

namespace SonicRL.Tool.Headless
{
    public static class HeadlessClient
    {
        const string Usage =
            "usage: SonicRecHeadless.exe --url ws://HOST:PORT [--system gen|nes] [--mode human|policy|any] [--game ID] [--token T]\n" +
            "       [--width W] [--height H] [--queue N] [--log FILE] [--max-steps N] [--disconnect-after N]\n" +
            "       [--resize-at N --resize WxH] [--no-size-check] [--hold-sends-at N --hold-ms MS]\n" +
            "       [--load-state-at N] [--no-reconnect] [--fps F] [--timeout-s S]";

        public static int Main(string[] args)
        {
            if (args.Length == 1 && args[0] == "--codec-check") return CodecSelfTest.Run();
            if (args.Length == 1 && args[0] == "--session-check") return SessionSelfTest.Run();
            Dictionary<string, string> a = new Dictionary<string, string>();
            HashSet<string> flags = new HashSet<string> { "--no-size-check", "--no-reconnect" };
            for (int i = 0; i < args.Length; i++)
            {
                if (flags.Contains(args[i])) { a[args[i]] = "1"; continue; }
                if (!args[i].StartsWith("--") || i + 1 >= args.Length)
                {
                    Console.Error.WriteLine("error: bad argument '" + args[i] + "'\n" + Usage);
                    return 2;
                }
                a[args[i]] = args[++i];
            }
            if (!a.ContainsKey("--url"))
            {
                Console.Error.WriteLine("error: --url is required\n" + Usage);
                return 2;
            }
            try
            {
                return Run(a);
            }
            catch (FormatException e)
            {
                Console.Error.WriteLine("error: " + e.Message + "\n" + Usage);
                return 2;
            }
        }

        static int Int(Dictionary<string, string> a, string key, int dflt)
        {
            string v;
            return a.TryGetValue(key, out v) ? int.Parse(v, CultureInfo.InvariantCulture) : dflt;
        }

        /// <summary>A double that parses back to the same bits (JSON and the stderr line).</summary>
        static string Num(double v)
        {
            return v.ToString("R", CultureInfo.InvariantCulture);
        }

        static string Str(Dictionary<string, string> a, string key, string dflt)
        {
            string v;
            return a.TryGetValue(key, out v) ? v : dflt;
        }

        static int Run(Dictionary<string, string> a)
        {
            SessionOptions opt = new SessionOptions();
            opt.Url = a["--url"];
            opt.Token = Str(a, "--token", "");
            opt.Game = Str(a, "--game", "");
            opt.ClientName = "sonic-rl headless test client";
            string mode = Str(a, "--mode", "any");
            opt.Mode = mode == "human" ? Mode.Human : mode == "policy" ? Mode.Policy : Mode.Any;
            opt.QueueCapacity = Int(a, "--queue", 64);
            opt.CheckSizeBeforeSending = !a.ContainsKey("--no-size-check");
            opt.Reconnect = !a.ContainsKey("--no-reconnect");
            int maxSteps = Int(a, "--max-steps", 100000);
            int disconnectAfter = Int(a, "--disconnect-after", -1);
            int resizeAt = Int(a, "--resize-at", -1);
            int holdAt = Int(a, "--hold-sends-at", -1);
            int holdMs = Int(a, "--hold-ms", 0);
            int loadStateAt = Int(a, "--load-state-at", -1);
            int timeoutS = Int(a, "--timeout-s", 60);
            // Emulated frames per second (0: as fast as possible); EmuHawk runs at 60.
            int fps = Int(a, "--fps", 0);
            int newW = 0, newH = 0;
            if (resizeAt >= 0)
            {
                string[] wh = Str(a, "--resize", "").Split('x');
                if (wh.Length != 2) throw new FormatException("--resize needs WxH");
                newW = int.Parse(wh[0], CultureInfo.InvariantCulture);
                newH = int.Parse(wh[1], CultureInfo.InvariantCulture);
            }

            SyntheticEmulator emu = new SyntheticEmulator(SyntheticSystem.Named(Str(a, "--system", "gen")), Int(a, "--width", 320), Int(a, "--height", 224));
            RecorderSession session = new RecorderSession(emu, opt);
            // What the tool window shows under "Emulator:".
            EmulatorInfo info = emu.Describe();
            Console.Error.WriteLine("[tool] emulator: " + info.Summary());
            if (info.Warning.Length > 0) Console.Error.WriteLine("[tool] warning: " + info.Warning);
            StreamWriter log = a.ContainsKey("--log") ? new StreamWriter(a["--log"], false, new UTF8Encoding(false)) : null;
            int stepsBuilt = 0;
            Stopwatch holdClock = null;
            bool stopAfterThis = false;

            session.Log += line => Console.Error.WriteLine("[tool] " + line);
            session.Sent += (msg, queued) =>
            {
                if (msg.Kind == Kind.Step)
                {
                    Step s = (Step)msg;
                    stepsBuilt++;
                    if (log != null)
                    {
                        StringBuilder masks = new StringBuilder();
                        foreach (uint m in s.Buttons) masks.Append(masks.Length > 0 ? "," : "").Append(m);
                        log.WriteLine("{\"t\":\"step\",\"seq\":" + s.Seq + ",\"frame\":" + s.Frame + ",\"masks\":[" + masks
                                      + "],\"x\":" + emu.X + ",\"w\":" + emu.Width + ",\"h\":" + emu.Height
                                      + ",\"queued\":" + (queued ? "true" : "false") + "}");
                    }
                    if (stepsBuilt == disconnectAfter || stepsBuilt == maxSteps) stopAfterThis = true;
                    if (stepsBuilt == resizeAt) emu.Resize(newW, newH);
                    if (stepsBuilt == holdAt)
                    {
                        session.Transport.SendHeld = true;
                        holdClock = Stopwatch.StartNew();
                    }
                    if (stepsBuilt == loadStateAt) emu.LoadStateAt(SyntheticEmulator.StartFrame + 500000);
                }
                else if (msg.Kind == Kind.EpisodeBegin && log != null)
                {
                    EpisodeBegin b = (EpisodeBegin)msg;
                    log.WriteLine("{\"t\":\"begin\",\"episode\":" + b.Episode + ",\"frame\":" + b.Frame + ",\"x\":" + emu.X
                                  + ",\"w\":" + emu.Width + ",\"h\":" + emu.Height + ",\"state\":" + b.StartState.Length + "}");
                }
            };
            session.Received += msg =>
            {
                if (log == null) return;
                if (msg.Kind == Kind.Action)
                {
                    ActionMsg m = (ActionMsg)msg;
                    log.WriteLine("{\"t\":\"action\",\"seq\":" + m.Seq + ",\"buttons\":" + m.Buttons + ",\"action\":" + m.Action + "}");
                }
                else if (msg.Kind == Kind.EpisodeEnd)
                {
                    EpisodeEnd e = (EpisodeEnd)msg;
                    log.WriteLine("{\"t\":\"end\",\"episode\":" + e.Episode + ",\"steps\":" + e.Steps + ",\"reason\":" + e.Reason + "}");
                }
                else if (msg.Kind == Kind.Reset)
                {
                    log.WriteLine("{\"t\":\"reset\",\"episode\":" + ((Reset)msg).Episode + "}");
                }
                else if (msg.Kind == Kind.Status)
                {
                    StatusMsg m = (StatusMsg)msg;
                    log.WriteLine("{\"t\":\"status\",\"episode\":" + m.Episode + ",\"steps\":" + m.Steps
                                  + ",\"reward\":" + Num(m.LastReward) + ",\"return\":" + Num(m.Return) + "}");
                }
            };

            Stopwatch clock = Stopwatch.StartNew();
            long frames = 0;
            Stopwatch pace = null;
            session.Connect();
            while (!session.IsFinished)
            {
                if (clock.ElapsedMilliseconds > timeoutS * 1000L)
                {
                    Console.Error.WriteLine("error: timed out after " + timeoutS + " s; " + session.Status().Summary());
                    if (log != null) log.Close();
                    return 3;
                }
                if (holdClock != null && holdClock.ElapsedMilliseconds >= holdMs)
                {
                    session.Transport.SendHeld = false;
                    holdClock = null;
                }
                session.Poll();
                if (stopAfterThis && session.State == SessionState.Running)
                {
                    stopAfterThis = false;
                    session.Disconnect();
                }
                if (session.State != SessionState.Running || emu.IsPaused || stopAfterThis)
                {
                    session.WaitForActivity(5);
                    continue;
                }
                if (fps > 0)
                {
                    if (pace == null) pace = Stopwatch.StartNew();
                    long due = frames * 1000L / fps;
                    long wait = due - pace.ElapsedMilliseconds;
                    if (wait > 0) { session.WaitForActivity((int)Math.Min(wait, 5)); continue; }
                }
                session.OnPreFrame();
                emu.EmulateFrame();
                session.OnPostFrame();
                frames++;
            }
            SessionStatus st = session.Status();
            if (log != null) log.Close();
            Console.Error.WriteLine("[tool] final: " + st.Summary());
            StatusMsg last = session.LastStatus;
            if (last != null)
                Console.Error.WriteLine("status: episode " + last.Episode + " steps " + last.Steps + " reward "
                                        + Num(last.LastReward) + " return " + Num(last.Return));
            Console.Out.WriteLine("frames=" + frames + " steps=" + stepsBuilt + " dropped=" + st.DroppedSteps
                                  + " unsynced=" + st.UnsyncedFrames + " mismatched=" + st.ButtonMismatchFrames
                                  + " loads=" + emu.LoadCount + " seconds=" + (clock.ElapsedMilliseconds / 1000.0).ToString("0.00", CultureInfo.InvariantCulture));
            if (session.State == SessionState.Failed)
            {
                Console.Error.WriteLine("error: " + st.Error);
                return 1;
            }
            return 0;
        }
    }
}
