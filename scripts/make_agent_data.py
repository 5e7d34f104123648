"""Write the built-in agent demo set (src/tuneforge/data/builtin/agent_demo.json) and the held-out agent questions
(tests/data/agent_heldout.json), programmatically.

A 135M model learns tool calling that carries over to tools it never saw only from varied data: every training
row draws its tool's name, parameter names and wording from per-domain variants, puts 1–2 distractor tools next
to it in a shuffled list, and asks with values (cities, numbers, names) that must be copied into the arguments.
Rows: single calls (70% ending at the call, the rest going on through an observation to a final answer), parallel
calls (two requests in one message), and chit-chat with tools offered where the right answer is no call — answered
with SmolLM2-135M-Instruct's own replies (the `general_replay_smollm2` set), so answering without tools keeps the
model's general behaviour. English and Chinese.

The held-out set uses other domains: its tool names and parameter names appear nowhere in the training set
(tests/test_e2e_agent.py checks), and its chit-chat questions are the held-out general questions
(tests/data/general_heldout.json) plus small talk, with held-out tools offered. A second held-out call set
(tests/data/agent_heldout_b.json) uses 12 more tools again, for recipes chosen on the first.

    python scripts/make_agent_data.py          # rewrites the three files (seeded: the same output every time)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_TRAIN = ROOT / "src/tuneforge/data/builtin/agent_demo.json"
OUT_HELDOUT = ROOT / "tests/data/agent_heldout.json"
OUT_HELDOUT_B = ROOT / "tests/data/agent_heldout_b.json"

CITIES = ["Paris", "Berlin", "Tokyo", "Madrid", "Toronto", "Cairo", "Lima", "Seoul", "Oslo", "Dublin", "Nairobi",
          "Hanoi", "Prague", "Denver", "Sydney", "Mumbai"]
CITIES_ZH = ["北京", "上海", "广州", "成都", "杭州", "西安", "南京", "武汉"]
PEOPLE = ["Alice", "Bob", "Maria", "Chen Wei", "Omar", "Priya", "Lucas", "Yuki", "Sara", "Tom"]
EMAILS = ["alice@example.com", "bob@mail.org", "maria.k@corp.net", "omar@home.io", "team@startup.dev"]
TOPICS = ["electric cars", "the Olympics", "climate change", "space travel", "jazz music", "solar power",
          "machine learning", "ancient Rome"]
TOPICS_ZH = ["人工智能", "新能源汽车", "足球", "天气变化", "太空探索"]
WORDS = ["serendipity", "ephemeral", "ubiquitous", "resilient", "meticulous", "candid", "nostalgia"]
TEAMS = ["Arsenal", "the Lakers", "Real Madrid", "the Yankees", "Bayern Munich", "the Warriors"]
MOVIES = ["Inception", "Dune", "Up", "Titanic", "Arrival", "Coco"]
ZONES = ["Asia/Tokyo", "Europe/London", "America/New_York", "Australia/Sydney", "Africa/Cairo"]
TASKS = ["call the dentist", "buy milk", "water the plants", "pay the rent", "send the report", "book a haircut"]
TASKS_ZH = ["给妈妈打电话", "买牛奶", "交房租", "取快递", "写周报"]
TIMES = ["7:00", "08:30", "09:15", "12:00", "14:45", "18:00", "21:30", "06:10", "05:45"]
CODES = ["A12B7", "ZX4471", "K9-002", "7Q2P", "RT-88K", "0042XY", "M3N4", "QQ17-5"]
SIZES = ["small", "medium", "large"]
TOPPINGS = ["mushrooms", "pepperoni", "olives", "pineapple", "extra cheese"]
FOODS = ["an apple", "a banana", "a slice of pizza", "a bowl of rice", "an egg"]


def fn(name, desc, params):
    props = {p: {"type": t, "description": d} for p, t, d in params}
    return {"name": name, "description": desc, "parameters": {"type": "object", "properties": props}}


# ---- training domains: each builds (tool, arguments, request_en, request_zh or None, observation, answer) ----------
def weather(r):
    name = r.choice(["get_weather", "current_weather", "weather_now", "fetch_weather"])
    p = r.choice(["city", "location", "city_name"])
    zh = r.random() < 0.3
    city = r.choice(CITIES_ZH if zh else CITIES)
    tool = fn(name, r.choice(["Get the current weather for a city", "Current weather conditions in a place"]),
              [(p, "string", "The city, e.g. Paris")])
    q = (r.choice(["{c}现在天气怎么样？", "查一下{c}的天气。", "{c}今天会下雨吗？"]) if zh else
         r.choice(["What's the weather like in {c}?", "Is it raining in {c} right now?", "How warm is it in {c} today?",
                   "Weather in {c}, please.", "Can you check the weather in {c} for me?"])).format(c=city)
    t = r.randint(-5, 33)
    obs = {"temperature_c": t, "condition": r.choice(["sunny", "cloudy", "rain"])}
    ans = (f"{city}现在 {t}°C，{ {'sunny': '晴', 'cloudy': '多云', 'rain': '有雨'}[obs['condition']] }。" if zh else
           f"It is {t}°C and {obs['condition']} in {city} right now.")
    return tool, {p: city}, q, obs, ans


def timezone(r):
    name = r.choice(["get_current_time", "time_in_zone", "world_clock"])
    p = r.choice(["timezone", "tz", "zone"])
    z = r.choice(ZONES)
    tool = fn(name, "Get the current local time in an IANA time zone", [(p, "string", "IANA time zone name")])
    zh = r.random() < 0.25
    q = (f"{z} 时区现在几点？" if zh else
         r.choice(["What time is it in {z}?", "Tell me the current time in the {z} time zone.",
                   "Current time for {z}?"]).format(z=z))
    h = f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}"
    return tool, {p: z}, q, {"time": h}, (f"{z} 现在是 {h}。" if zh else f"It is {h} in {z}.")


def email(r):
    name = r.choice(["send_email", "email_send", "compose_email"])
    p_to, p_sub = r.choice([("to", "subject"), ("recipient", "title"), ("address", "subject_line")])
    to, topic = r.choice(EMAILS), r.choice(["the meeting", "lunch on Friday", "the invoice", "the trip", "the budget"])
    tool = fn(name, "Send an email", [(p_to, "string", "Recipient email address"),
                                      (p_sub, "string", "Subject of the email")])
    zh = r.random() < 0.25
    q = (f"给 {to} 发一封邮件，主题是“{topic}”。" if zh else
         r.choice(["Send an email to {to} with the subject \"{s}\".", "Email {to} about \"{s}\".",
                   "Please write to {to}, subject \"{s}\"."]).format(to=to, s=topic))
    return tool, {p_to: to, p_sub: topic}, q, {"status": "sent"}, (f"邮件已发送给 {to}。" if zh else
                                                                   f"Done, the email to {to} has been sent.")


def reminder(r):
    name = r.choice(["create_reminder", "add_reminder", "set_reminder"])
    p_t, p_w = r.choice([("task", "time"), ("message", "at"), ("note", "when")])
    zh = r.random() < 0.3
    task, tm = r.choice(TASKS_ZH if zh else TASKS), r.choice(TIMES)
    tool = fn(name, "Create a reminder at a time of day", [(p_t, "string", "What to be reminded of"),
                                                           (p_w, "string", "Time of day, HH:MM")])
    q = (f"提醒我 {tm} {task}。" if zh else
         r.choice(["Remind me to {t} at {h}.", "Set a reminder at {h} to {t}.", "At {h}, remind me to {t}."])
         .format(t=task, h=tm))
    return tool, {p_t: task, p_w: tm}, q, {"ok": True}, (f"好的，{tm} 会提醒你{task}。" if zh else
                                                          f"Okay, I'll remind you to {task} at {tm}.")


def web_search(r):
    name = r.choice(["search_web", "web_search", "internet_search", "search_news"])
    p = r.choice(["query", "q", "keywords"])
    zh = r.random() < 0.3
    topic = r.choice(TOPICS_ZH if zh else TOPICS)
    tool = fn(name, "Search the web for recent information", [(p, "string", "Search terms")])
    q = (r.choice(["帮我搜索一下关于{t}的最新消息。", "搜一下{t}。"]) if zh else
         r.choice(["Search the web for news about {t}.", "Look up the latest on {t}.", "Find recent articles on {t}."])
         ).format(t=topic)
    return tool, {p: topic}, q, {"results": [f"{topic}: a new report was published today"]}, (
        f"关于{topic}：今天发布了一份新报告。" if zh else f"The latest on {topic}: a new report was published today.")


def tip(r):
    name = r.choice(["calculate_tip", "tip_calculator", "compute_tip"])
    p_b, p_p = r.choice([("bill", "percent"), ("bill_amount", "tip_percentage"), ("total", "rate")])
    b, pc = r.choice([20, 35, 48, 60, 80, 125, 200]), r.choice([10, 15, 18, 20, 25])
    tool = fn(name, "Calculate the tip for a bill", [(p_b, "number", "Bill amount"), (p_p, "number", "Tip percent")])
    zh = r.random() < 0.3
    q = (f"账单 {b} 元，给 {pc}% 的小费是多少？" if zh else
         r.choice(["What's a {p}% tip on a ${b} bill?", "Calculate a {p} percent tip for {b} dollars.",
                   "My bill is {b}. How much is a {p}% tip?"]).format(p=pc, b=b))
    t = round(b * pc / 100, 2)
    return tool, {p_b: b, p_p: pc}, q, {"tip": t}, (f"小费是 {t} 元。" if zh else f"The tip is {t}.")


def define(r):
    name = r.choice(["define_word", "dictionary_lookup", "word_definition"])
    p = r.choice(["word", "term", "entry"])
    w = r.choice(WORDS)
    tool = fn(name, "Look up the definition of an English word", [(p, "string", "The word")])
    q = r.choice(["What does \"{w}\" mean?", "Define the word {w}.", "Look up {w} in the dictionary."]).format(w=w)
    return tool, {p: w}, q, {"definition": "a short definition"}, f"\"{w}\" means: a short definition."


def score(r):
    name = r.choice(["get_team_score", "sports_score", "latest_match_result"])
    p = r.choice(["team", "club", "team_name"])
    t = r.choice(TEAMS)
    tool = fn(name, "Get the result of a team's latest game", [(p, "string", "Team name")])
    q = r.choice(["How did {t} do in their last game?", "What was the score of {t}'s latest match?",
                  "Did {t} win yesterday?"]).format(t=t)
    return tool, {p: t}, q, {"result": "won 2-1"}, f"{t} won their last game 2-1."


def showtimes(r):
    name = r.choice(["movie_showtimes", "find_showtimes", "cinema_schedule"])
    p_m, p_c = r.choice([("movie", "city"), ("title", "location"), ("film", "town")])
    m, c = r.choice(MOVIES), r.choice(CITIES)
    tool = fn(name, "Find cinema showtimes for a movie in a city", [(p_m, "string", "Movie title"),
                                                                    (p_c, "string", "City")])
    q = r.choice(["When is {m} playing in {c}?", "Find showtimes for {m} in {c}.",
                  "Is {m} on at any cinema in {c} tonight?"]).format(m=m, c=c)
    return tool, {p_m: m, p_c: c}, q, {"times": ["18:00", "21:00"]}, f"{m} plays in {c} at 18:00 and 21:00."


def pizza(r):
    name = r.choice(["order_pizza", "pizza_order", "place_pizza_order"])
    p_s, p_t = r.choice([("size", "topping"), ("pizza_size", "extra"), ("size", "toppings")])
    s, t = r.choice(SIZES), r.choice(TOPPINGS)
    tool = fn(name, "Order a pizza for delivery", [(p_s, "string", "small, medium or large"),
                                                   (p_t, "string", "Topping")])
    q = r.choice(["Order a {s} pizza with {t}.", "I'd like a {s} {t} pizza, please.",
                  "Get me a {s} pizza topped with {t}."]).format(s=s, t=t)
    return tool, {p_s: s, p_t: t}, q, {"order_id": r.randint(1000, 9999)}, f"Your {s} pizza with {t} is on its way."


def distance(r):
    name = r.choice(["get_distance", "distance_between", "route_distance"])
    p_a, p_b = r.choice([("origin", "destination"), ("start", "end"), ("from_city", "to_city")])
    a, b = r.sample(CITIES, 2)
    tool = fn(name, "Distance by road between two cities", [(p_a, "string", "Starting city"),
                                                            (p_b, "string", "Destination city")])
    q = r.choice(["How far is it from {a} to {b}?", "What's the distance between {a} and {b}?",
                  "Distance from {a} to {b}, please."]).format(a=a, b=b)
    km = r.randint(80, 3000)
    return tool, {p_a: a, p_b: b}, q, {"km": km}, f"It is about {km} km from {a} to {b}."


def calories(r):
    name = r.choice(["count_calories", "calorie_lookup", "food_calories"])
    p = r.choice(["food", "item", "dish"])
    f = r.choice(FOODS)
    tool = fn(name, "Calories in a food item", [(p, "string", "The food")])
    q = r.choice(["How many calories are in {f}?", "Calories in {f}?", "Count the calories of {f}."]).format(f=f)
    k = r.randint(50, 300)
    return tool, {p: f}, q, {"kcal": k}, f"{f[0].upper() + f[1:]} has about {k} kcal."


def contact(r):
    name = r.choice(["call_contact", "phone_call", "dial_contact"])
    p = r.choice(["contact", "person", "contact_name"])
    who = r.choice(PEOPLE)
    tool = fn(name, "Start a phone call with a saved contact", [(p, "string", "Contact name")])
    zh = r.random() < 0.3
    q = (f"给 {who} 打个电话。" if zh else r.choice(["Call {w}.", "Please phone {w}.", "Can you ring {w} for me?"])
         .format(w=who))
    return tool, {p: who}, q, {"status": "calling"}, (f"正在呼叫 {who}。" if zh else f"Calling {who} now.")


def timer(r):
    name = r.choice(["start_timer", "set_timer", "countdown"])
    p = r.choice(["minutes", "duration_minutes", "mins"])
    m = r.choice([3, 5, 10, 12, 15, 20, 25, 30, 45])
    tool = fn(name, "Start a countdown timer", [(p, "integer", "Length in minutes")])
    zh = r.random() < 0.3
    q = (f"设一个 {m} 分钟的计时器。" if zh else
         r.choice(["Set a timer for {m} minutes.", "Start a {m} minute timer.", "Timer, {m} minutes please."])
         .format(m=m))
    return tool, {p: m}, q, {"ok": True}, (f"{m} 分钟计时器已开始。" if zh else f"Your {m}-minute timer is running.")


def order(r):
    name = r.choice(["check_order_status", "order_lookup", "where_is_my_order"])
    p = r.choice(["order_id", "order_number", "reference"])
    c = r.choice(CODES)
    tool = fn(name, "Status of a shop order by its id", [(p, "string", "Order id, e.g. A12B7")])
    zh = r.random() < 0.3
    q = (f"帮我查一下订单 {c} 的状态。" if zh else
         r.choice(["Where is my order {c}?", "Check the status of order {c}.", "My order id is {c}. Has it shipped?"])
         .format(c=c))
    return tool, {p: c}, q, {"status": "shipped"}, (f"订单 {c} 已发货。" if zh else f"Order {c} has shipped.")


# ---- more training domains, in a compact form: every value is copied from the request into the arguments ---------
def simple(r, names, descs, params, en, zh=(), zh_rate=0.3, obs=None, ans=("Done.", "好的，已完成。")):
    """One row of a one-call domain. params: (parameter-name variants, JSON type, description, English values,
    Chinese values or None); the request and answer templates take the values as {0}, {1}, …"""
    use_zh = bool(zh) and r.random() < zh_rate and all(pz for *_, pz in params if _[1] == "string")
    args, vals, props = {}, [], []
    for pnames, typ, desc, pool_en, pool_zh in params:
        name = r.choice(pnames)
        v = r.choice(pool_zh if use_zh and pool_zh else pool_en)
        args[name], vals = v, vals + [v]
        props.append((name, typ, desc))
    tool = fn(r.choice(names), r.choice(descs), props)
    q = r.choice(zh if use_zh else en).format(*vals)
    return tool, args, q, obs or {"ok": True}, (ans[1] if use_zh else ans[0]).format(*vals)


def train_status(r):
    return simple(r, ["get_train_status", "train_info", "rail_status"], ["Live status of a train service",
                  "Check whether a train runs on time"],
                  [(["train_id", "train_code", "service_number"], "string", "Train number, e.g. ICE512",
                    ["ICE512", "TGV6203", "EC174", "AMT77", "RJ1023", "S8-4410"], ["G102", "D2211", "K1373", "Z48"])],
                  ["Is train {0} running on time?", "What's the status of train {0}?", "Check train {0} for me.",
                   "Has train {0} left yet?"], ["查一下 {0} 次列车的状态。", "{0} 次列车晚点了吗？"],
                  obs={"status": "on time"}, ans=("Train {0} is on time.", "{0} 次列车正点运行。"))


def crypto(r):
    return simple(r, ["get_crypto_price", "crypto_quote", "coin_price"], ["Current price of a cryptocurrency"],
                  [(["symbol", "coin", "asset_symbol"], "string", "Coin symbol such as BTC",
                    ["BTC", "ETH", "SOL", "DOGE", "ADA", "XRP", "LTC"], ["BTC", "ETH", "SOL", "DOGE"])],
                  ["What is {0} trading at?", "Price of {0} right now?", "How much is one {0} worth today?",
                   "Give me the current {0} price."], ["{0} 现在多少钱？", "查一下 {0} 的价格。"],
                  obs={"usd": 1234.5}, ans=("{0} trades at $1234.5.", "{0} 现在是 1234.5 美元。"))


def book(r):
    return simple(r, ["find_book", "search_books", "library_lookup"], ["Find a book in the library catalogue"],
                  [(["book_title", "book_name", "work_title"], "string", "Title of the book",
                    ["Dune", "The Hobbit", "Moby Dick", "Pride and Prejudice", "Brave New World", "Little Women"],
                    ["红楼梦", "三体", "活着", "围城"])],
                  ["Is {0} available at the library?", "Find the book {0}.", "Look up the book {0} for me.",
                   "Do you have {0} in the catalogue?"], ["帮我找一本书《{0}》。", "图书馆有《{0}》吗？"],
                  obs={"available": True}, ans=("{0} is available.", "《{0}》可以借阅。"))


def podcast(r):
    return simple(r, ["play_podcast", "start_podcast", "podcast_player"], ["Play a podcast on the speaker"],
                  [(["podcast", "show_name", "podcast_name"], "string", "Name of the podcast",
                    ["The Daily", "Radiolab", "Serial", "Planet Money", "Hardcore History"], ["得到", "日谈公园", "故事FM"])],
                  ["Play the podcast {0}.", "Put on {0}, please.", "Can you start the {0} podcast?"],
                  ["播放播客《{0}》。", "我想听《{0}》。"], ans=("Playing {0}.", "正在播放《{0}》。"))


def lyrics(r):
    return simple(r, ["get_lyrics", "find_lyrics", "lyrics_search"], ["Show the lyrics of a song"],
                  [(["track", "track_name", "tune"], "string", "Song name",
                    ["Let It Be", "Imagine", "Hotel California", "Wonderwall", "Africa", "Halo"],
                    ["童话", "青花瓷", "后来", "小幸运"])],
                  ["Show me the lyrics of {0}.", "What are the words to {0}?", "Find the lyrics for {0}."],
                  ["给我看《{0}》的歌词。", "《{0}》的歌词是什么？"], obs={"lyrics": "…"},
                  ans=("Here are the lyrics of {0}.", "这是《{0}》的歌词。"))


def thermostat(r):
    return simple(r, ["set_thermostat", "adjust_temperature", "climate_control"], ["Set the heating to a temperature"],
                  [(["degrees", "target_temp", "celsius"], "integer", "Temperature in °C",
                    [17, 18, 19, 20, 21, 22, 23, 24, 25, 26], None)],
                  ["Set the thermostat to {0} degrees.", "Make it {0}°C in here.", "Heat the house to {0} degrees."],
                  ["把空调调到 {0} 度。", "温度设成 {0} 度。"], ans=("The thermostat is set to {0}°C.", "已调到 {0} 度。"))


def volume(r):
    return simple(r, ["set_volume", "speaker_volume", "adjust_volume"], ["Set the speaker volume, 0 to 100"],
                  [(["level", "volume_level", "percent_volume"], "integer", "0 to 100",
                    [10, 20, 25, 30, 40, 50, 60, 75, 80], None)],
                  ["Set the volume to {0}.", "Turn the volume to {0} percent.", "Volume {0}, please."],
                  ["把音量调到 {0}。", "音量设为 {0}。"], ans=("Volume is at {0}.", "音量已调到 {0}。"))


def navigate(r):
    return simple(r, ["start_navigation", "navigate", "get_directions"], ["Start turn-by-turn directions to a place"],
                  [(["destination_address", "go_to", "target_place"], "string", "Where to go",
                    ["10 Downing Street", "Central Station", "350 Fifth Avenue", "the airport", "Union Square",
                     "12 Rue de Rivoli"], ["天安门广场", "西湖", "南京路", "火车站"])],
                  ["Navigate to {0}.", "Take me to {0}.", "Give me directions to {0}.", "How do I get to {0}?"],
                  ["导航到{0}。", "带我去{0}。", "去{0}怎么走？"], ans=("Starting directions to {0}.", "开始导航到{0}。"))


def hotel(r):
    return simple(r, ["book_hotel", "reserve_hotel", "hotel_booking"], ["Book a hotel room for some nights"],
                  [(["hotel_name", "hotel", "property"], "string", "Hotel name",
                    ["the Hilton", "Grand Hotel", "Hotel Sacher", "the Ritz", "Park Inn"], ["如家酒店", "锦江饭店", "全季酒店"]),
                   (["nights", "num_nights", "stay_length"], "integer", "Number of nights", [1, 2, 3, 4, 5, 7], None)],
                  ["Book {1} nights at {0}.", "Reserve {0} for {1} nights.", "I need a room at {0} for {1} nights."],
                  ["帮我订{0}，住 {1} 晚。", "在{0}订 {1} 晚。"], ans=("Booked {0} for {1} nights.", "已预订{0} {1} 晚。"))


def meeting(r):
    return simple(r, ["schedule_meeting", "create_event", "add_calendar_event"], ["Add an event to the calendar"],
                  [(["event", "event_name", "meeting_title"], "string", "What the event is",
                    ["team meeting", "budget review", "project sync", "dentist appointment", "coffee with Sara"],
                    ["团队会议", "面试", "牙医预约", "项目复盘"]),
                   (["start_time", "begins_at", "starts"], "string", "Start time, HH:MM",
                    ["09:00", "10:30", "13:15", "16:00", "08:05", "07:40", "11:20", "17:50"],
                    ["09:00", "10:30", "14:00", "08:15"])],
                  ["Schedule the {0} at {1}.", "Put the {0} in my calendar at {1}.", "Add the {0} at {1} today."],
                  ["{1} 安排一个{0}。", "在日历上加一个 {1} 的{0}。"], ans=("The {0} is set for {1}.", "已安排 {1} 的{0}。"))


def units(r):
    a, b = r.choice([("km", "miles"), ("miles", "km"), ("kg", "pounds"), ("pounds", "kg"), ("liters", "gallons"),
                     ("feet", "meters")])
    pv, pf, pt = r.choice([("quantity", "unit_from", "unit_to"), ("value", "source_unit", "target_unit"),
                           ("number", "from_unit", "to_unit")])
    v = r.choice([3, 5, 10, 12, 26, 100, 250])
    tool = fn(r.choice(["convert_units", "unit_converter", "measure_convert"]), "Convert a measurement between units",
              [(pv, "number", "How much"), (pf, "string", "Unit to convert from"), (pt, "string", "Unit to convert to")])
    zh = r.random() < 0.3
    q = (f"把 {v} {a} 换算成 {b}。" if zh else r.choice(["Convert {v} {a} to {b}.", "How many {b} is {v} {a}?",
                                                      "What is {v} {a} in {b}?"]).format(v=v, a=a, b=b))
    return tool, {pv: v, pf: a, pt: b}, q, {"result": 42.1}, (f"{v} {a} 约等于 42.1 {b}。" if zh else
                                                               f"{v} {a} is about 42.1 {b}.")


def spelling(r):
    return simple(r, ["check_spelling", "spell_check", "proofread"], ["Check the spelling of a sentence"],
                  [(["sentence", "phrase", "input_text"], "string", "Text to check",
                    ["I recieve mail daily", "Their going home", "definately maybe", "a seperate room",
                     "see you tommorow"], None)],
                  ["Check the spelling of \"{0}\".", "Is \"{0}\" spelled right?", "Proofread this: \"{0}\""],
                  (), obs={"corrected": "…"}, ans=("Here is the corrected text.", ""))


def speak(r):
    return simple(r, ["speak_text", "read_aloud", "text_to_speech"], ["Read text aloud in a language"],
                  [(["utterance", "words", "script"], "string", "What to say",
                    ["happy birthday", "welcome home", "see you soon", "thank you very much"], ["生日快乐", "欢迎回家"]),
                   (["voice_language", "lang", "speech_language"], "string", "Language of the voice",
                    ["Spanish", "German", "Japanese", "Italian", "English"], ["英语", "日语", "德语"])],
                  ["Read \"{0}\" aloud in {1}.", "Say \"{0}\" in a {1} voice.", "Speak \"{0}\" in {1}, please."],
                  ["用{1}读出“{0}”。", "用{1}说“{0}”。"], ans=("Speaking now.", "正在朗读。"))


def wine(r):
    return simple(r, ["wine_pairing", "suggest_wine", "pair_wine"], ["Suggest a wine that goes with a dish"],
                  [(["dish_name", "meal", "course"], "string", "The dish",
                    ["roast chicken", "salmon", "lasagna", "steak", "mushroom risotto"], ["红烧肉", "麻婆豆腐", "北京烤鸭"])],
                  ["What wine goes with {0}?", "Suggest a wine for {0}.", "Which wine should I serve with {0}?"],
                  ["{0}配什么酒好？", "推荐一款配{0}的酒。"], obs={"wine": "Pinot Noir"},
                  ans=("Try a Pinot Noir with {0}.", "{0}可以配黑皮诺。"))


def holidays(r):
    return simple(r, ["public_holidays", "country_holidays", "holiday_calendar"], ["Public holidays of a nation"],
                  [(["nation", "nation_name", "region"], "string", "Name of the nation",
                    ["France", "India", "Mexico", "Egypt", "Canada", "Peru", "Vietnam"], ["法国", "印度", "墨西哥", "韩国"])],
                  ["What are the public holidays in {0}?", "List the national holidays of {0}.",
                   "When are the bank holidays in {0}?"], ["{0}有哪些法定节日？", "查一下{0}的公共假期。"],
                  obs={"holidays": ["…"]}, ans=("Here are the public holidays of {0}.", "这是{0}的法定节日。"))


def blinds(r):
    area = r.choice(["bedroom", "living room", "office", "bathroom", "garage"])
    want = r.choice(["open", "closed"])
    pa, ps = r.choice([("area", "position"), ("space", "setting"), ("room_name", "blind_state")])
    tool = fn(r.choice(["set_blinds", "control_blinds", "window_blinds"]), "Open or close the blinds of a room",
              [(pa, "string", "Which room"), (ps, "string", "open or closed")])
    verb = "Open" if want == "open" else "Close"
    q = r.choice([f"{verb} the blinds in the {area}.", f"{verb} the {area} blinds, please.",
                  f"Can you {verb.lower()} the blinds in the {area}?"])
    return tool, {pa: area, ps: want}, q, {"ok": True}, f"The {area} blinds are {want}."


def appliance(r):
    dev_en = ["tv", "fan", "heater", "radio", "printer", "kettle"]
    dev_zh = {"电视": "tv", "风扇": "fan", "暖气": "heater", "收音机": "radio"}
    on = r.random() < 0.5
    pd, pp = r.choice([("device", "power"), ("appliance", "switch_to"), ("gadget", "mode")])
    tool = fn(r.choice(["switch_device", "device_power", "toggle_device"]), "Switch a device on or off",
              [(pd, "string", "Device name"), (pp, "string", "on or off")])
    if r.random() < 0.3:
        zh_name = r.choice(list(dev_zh))
        q = f"{'打开' if on else '关掉'}{zh_name}。"
        return tool, {pd: zh_name, pp: "on" if on else "off"}, q, {"ok": True}, f"{zh_name}已{'打开' if on else '关闭'}。"
    d = r.choice(dev_en)
    q = r.choice([f"Switch the {d} {'on' if on else 'off'}.", f"Turn {'on' if on else 'off'} the {d}.",
                  f"Please turn the {d} {'on' if on else 'off'}."])
    return tool, {pd: d, pp: "on" if on else "off"}, q, {"ok": True}, f"The {d} is {'on' if on else 'off'}."


def split_bill(r):
    return simple(r, ["split_bill", "divide_bill", "share_cost"], ["Split a bill between people"],
                  [(["total_amount", "sum", "bill_total"], "number", "Total to split", [60, 84, 120, 90.5, 250], None),
                   (["people", "party_size", "num_people"], "integer", "How many people", [2, 3, 4, 5, 6], None)],
                  ["Split {0} dollars between {1} people.", "We are {1} people and the bill is {0}. How much each?",
                   "Divide a bill of {0} among {1} friends."], ["{1} 个人平分 {0} 元，每人多少？"],
                  obs={"each": 21.0}, ans=("That is 21.0 each.", "每人 21.0 元。"))


def receipt(r):
    return simple(r, ["return_item", "start_return", "refund_request"], ["Start a return for a purchase"],
                  [(["receipt_number", "purchase_id", "invoice_code"], "string", "Receipt number",
                    ["RX-5521", "7730KL", "INV0093", "B2C-118", "44T9Q"], ["RX-5521", "INV0093", "JD20931"])],
                  ["I want to return the item on receipt {0}.", "Start a return for purchase {0}.",
                   "Refund order {0}, please."], ["我要退货，小票号 {0}。", "帮我申请退款，单号 {0}。"],
                  obs={"return_id": "R-1"}, ans=("The return for {0} has started.", "{0} 的退货已提交。"))


def sms(r):
    return simple(r, ["send_text_message", "send_sms", "text_contact"], ["Send a text message"],
                  [(["recipient_name", "to_person", "send_to"], "string", "Who gets it", PEOPLE, ["小王", "李雷", "妈妈"]),
                   (["message", "body", "sms_text"], "string", "The message",
                    ["running late", "see you at 8", "call me back", "happy birthday!"], ["我晚点到", "生日快乐", "回我电话"])],
                  ["Text {0}: \"{1}\".", "Send {0} a message saying \"{1}\".", "Tell {0} \"{1}\" by SMS."],
                  ["给{0}发短信：“{1}”。", "发消息给{0}，说“{1}”。"], ans=("Message sent to {0}.", "已发送给{0}。"))


def day_of_week(r):
    return simple(r, ["day_of_week", "weekday_for_date", "what_day"], ["Which weekday a date falls on"],
                  [(["date", "calendar_date", "day"], "string", "Date, YYYY-MM-DD",
                    ["2026-03-14", "2025-12-25", "2027-01-01", "2026-07-04", "2026-10-31"],
                    ["2026-03-14", "2026-10-01", "2027-02-06"])],
                  ["What day of the week is {0}?", "Which weekday is {0}?", "Is {0} a weekend?"],
                  ["{0} 是星期几？"], obs={"weekday": "Saturday"}, ans=("{0} is a Saturday.", "{0} 是星期六。"))


def parking(r):
    return simple(r, ["find_parking", "parking_near", "locate_parking"], ["Find parking near a place"],
                  [(["near", "close_to", "around"], "string", "Place to park near",
                    ["the stadium", "Times Square", "the city hall", "Main Street", "the zoo"], ["体育馆", "市政府", "动物园"])],
                  ["Find parking near {0}.", "Where can I park close to {0}?", "Any parking around {0}?"],
                  ["{0}附近哪里能停车？", "找一下{0}附近的停车场。"], obs={"spots": 12},
                  ans=("There are 12 spots near {0}.", "{0}附近有 12 个车位。"))


# ---- a third group (2026-12-03, `extra=True`): more tool shapes, Chinese values in the middle of the request ------
def movie_info(r):
    return simple(r, ["movie_details", "film_info", "lookup_movie"], ["Details about a film"],
                  [(["film", "movie_title", "picture"], "string", "Film title", MOVIES + ["Heat", "Alien"],
                    ["霸王别姬", "流浪地球", "你好，李焕英"])],
                  ["Tell me about the film {0}.", "Who directed {0}?", "Look up the movie {0}."],
                  ["告诉我电影《{0}》的信息。", "《{0}》是谁导演的？"], obs={"year": 1999},
                  ans=("{0} came out in 1999.", "《{0}》是 1999 年的电影。"))


def flower(r):
    return simple(r, ["order_flowers", "send_bouquet", "flower_delivery"], ["Send flowers to someone"],
                  [(["flower_kind", "bouquet", "blossom"], "string", "Which flowers",
                    ["roses", "tulips", "sunflowers", "lilies", "orchids"], ["玫瑰", "郁金香", "百合"]),
                   (["deliver_to", "receiver", "for_whom"], "string", "Who receives them", PEOPLE, ["妈妈", "小李", "张老师"])],
                  ["Send {0} to {1}.", "Order some {0} for {1}.", "Have {0} delivered to {1}, please."],
                  ["给{1}送一束{0}。", "帮我订{0}送给{1}。"], ans=("The {0} are on their way to {1}.", "{0}会送到{1}那里。"))


def museum(r):
    return simple(r, ["museum_hours", "opening_times", "venue_hours"], ["Opening hours of a museum or venue"],
                  [(["venue", "museum", "place_name"], "string", "Name of the venue",
                    ["the Louvre", "the British Museum", "MoMA", "the Prado", "the Met"], ["故宫", "国家博物馆", "上海博物馆"])],
                  ["When is {0} open?", "What are the opening hours of {0}?", "Is {0} open today?"],
                  ["{0}几点开门？", "{0}今天开放吗？", "查一下{0}的开放时间。"], obs={"hours": "9-17"},
                  ans=("{0} is open 9 to 17.", "{0}开放时间是 9 点到 17 点。"))


def gym(r):
    return simple(r, ["log_workout", "record_exercise", "fitness_log"], ["Log a workout"],
                  [(["activity", "sport", "exercise"], "string", "What was done",
                    ["running", "swimming", "cycling", "yoga", "rowing"], ["跑步", "游泳", "骑车", "瑜伽"]),
                   (["minutes", "duration_min", "length_minutes"], "integer", "How long, in minutes",
                    [15, 20, 30, 45, 60, 90], None)],
                  ["Log {1} minutes of {0}.", "I did {0} for {1} minutes, record it.", "Add a {1} minute {0} workout."],
                  ["记录一下我{0}了 {1} 分钟。", "帮我记下{0} {1} 分钟。"], ans=("Logged {1} minutes of {0}.", "已记录{0} {1} 分钟。"))


def recipe_scale(r):
    return simple(r, ["grocery_add", "add_to_shopping_list", "shopping_list_add"], ["Add an item to the shopping list"],
                  [(["item", "product", "grocery_item"], "string", "What to buy",
                    ["eggs", "olive oil", "bread", "coffee beans", "apples", "rice"], ["鸡蛋", "牛奶", "大米", "苹果"])],
                  ["Add {0} to my shopping list.", "Put {0} on the list.", "I need to buy {0}, note it."],
                  ["把{0}加到购物清单里。", "购物清单加上{0}。", "记得买{0}。"], ans=("Added {0}.", "已添加{0}。"))


def stopwatch(r):
    return simple(r, ["flight_search", "search_flights", "find_flights"], ["Search flights between two cities"],
                  [(["origin_city", "depart_from", "leaving_from"], "string", "Where from", CITIES, CITIES_ZH),
                   (["destination_city", "arrive_at", "going_to"], "string", "Where to", CITIES, CITIES_ZH)],
                  ["Find flights from {0} to {1}.", "Search flights {0} to {1}.", "Any flights from {0} to {1}?"],
                  ["查一下从{0}到{1}的航班。", "帮我找{0}飞{1}的机票。"], obs={"flights": 3},
                  ans=("There are 3 flights from {0} to {1}.", "从{0}到{1}有 3 个航班。"))


def news_topic(r):
    return simple(r, ["subscribe_newsletter", "newsletter_signup", "join_mailing_list"], ["Subscribe to a newsletter"],
                  [(["newsletter", "list_name", "digest"], "string", "Which newsletter",
                    ["Tech Weekly", "Morning Brew", "The Batch", "Science Daily"], ["科技周刊", "每日财经"]),
                   (["email_address", "mail", "inbox"], "string", "Where to send it", EMAILS, None)],
                  ["Subscribe {1} to {0}.", "Sign {1} up for the {0} newsletter.", "Add {1} to the {0} list."],
                  (), ans=("{1} is subscribed to {0}.", ""))


def air_quality(r):
    return simple(r, ["air_quality", "pollution_index", "aqi_lookup"], ["Air-quality index of a city"],
                  [(["metro", "urban_area", "municipality"], "string", "City", CITIES, CITIES_ZH)],
                  ["How is the air quality in {0}?", "What is the AQI in {0}?", "Is the air clean in {0} today?"],
                  ["{0}今天空气质量怎么样？", "查一下{0}的空气指数。", "{0}的雾霾严重吗？"], obs={"aqi": 42},
                  ans=("The AQI in {0} is 42.", "{0}的空气指数是 42。"))


def dictionary_zh(r):
    return simple(r, ["pinyin_of", "to_pinyin", "chinese_pinyin"], ["Pinyin of Chinese characters"],
                  [(["characters", "hanzi", "chinese_text"], "string", "Chinese text",
                    ["你好", "谢谢", "再见", "学习"], ["你好", "谢谢", "长江", "熊猫", "学习"])],
                  ["What is the pinyin of {0}?", "How do you pronounce {0}?", "Give me the pinyin for {0}."],
                  ["“{0}”的拼音是什么？", "{0}怎么读？", "帮我标一下“{0}”的拼音。"], obs={"pinyin": "…"},
                  ans=("Here is the pinyin of {0}.", "这是“{0}”的拼音。"))


def car_rental(r):
    return simple(r, ["rent_car", "car_hire", "book_rental_car"], ["Rent a car in a city for some days"],
                  [(["pickup_city", "rental_location", "collect_in"], "string", "City", CITIES, CITIES_ZH),
                   (["days", "rental_days", "num_days"], "integer", "How many days", [1, 2, 3, 5, 7, 10], None)],
                  ["Rent a car in {0} for {1} days.", "I need a rental car in {0}, {1} days.",
                   "Book a car in {0} for {1} days."], ["在{0}租一辆车，租 {1} 天。", "帮我在{0}订 {1} 天的租车。"],
                  ans=("Your car in {0} is booked for {1} days.", "已在{0}订好 {1} 天的车。"))


def doc_print(r):
    return simple(r, ["print_document", "send_to_printer", "print_file"], ["Print a document"],
                  [(["document", "file_name", "doc"], "string", "File to print",
                    ["report.pdf", "invoice_march.pdf", "notes.docx", "ticket.png"], ["合同.pdf", "简历.docx"]),
                   (["copies", "num_copies", "count"], "integer", "How many copies", [1, 2, 3, 5, 10], None)],
                  ["Print {1} copies of {0}.", "Print {0}, {1} copies.", "Send {0} to the printer, {1} copies."],
                  ["把{0}打印 {1} 份。", "打印{0}，{1} 份。"], ans=("Printing {1} copies of {0}.", "正在打印{0} {1} 份。"))


def vaccine(r):
    return simple(r, ["pet_feeder", "feed_pet", "dispense_food"], ["Dispense food from the pet feeder"],
                  [(["pet", "animal", "pet_name"], "string", "Which pet", ["Rex", "Luna", "Milo", "Bella", "the cat"],
                    ["小白", "旺财", "咪咪"]),
                   (["grams", "portion_g", "amount_g"], "integer", "Portion in grams", [20, 30, 50, 80, 100], None)],
                  ["Feed {0} {1} grams.", "Give {0} {1} g of food.", "Dispense {1} grams for {0}."],
                  ["给{0}喂 {1} 克粮。", "喂{0} {1} 克。"], ans=("{0} got {1} g.", "已给{0}喂了 {1} 克。"))


def translate_word(r):
    return simple(r, ["lookup_synonyms", "thesaurus", "find_synonyms"], ["Synonyms of a word"],
                  [(["term", "lemma", "vocab"], "string", "The word", WORDS + ["happy", "big", "fast"], ["高兴", "美丽", "快"])],
                  ["Give me synonyms for {0}.", "What's another word for {0}?", "Synonyms of {0}?"],
                  ["“{0}”有哪些近义词？", "给我几个“{0}”的同义词。"], obs={"synonyms": ["…"]},
                  ans=("Here are synonyms of {0}.", "这是“{0}”的近义词。"))


def garage(r):
    return simple(r, ["garage_door", "open_garage", "garage_control"], ["Open or close the garage door"],
                  [(["command", "door_action", "operation"], "string", "open or close", ["open", "close"], None)],
                  ["Please {0} the garage door.", "{0} the garage.", "Can you {0} the garage door?"],
                  (), ans=("The garage door will {0}.", ""))


def lottery(r):
    return simple(r, ["check_lottery", "lottery_results", "ticket_check"], ["Check a lottery ticket"],
                  [(["ticket_number", "ticket_id", "draw_ticket"], "string", "Ticket number",
                    ["LT-4417", "99812", "A77-03", "5523K"], ["LT-4417", "88021"])],
                  ["Did ticket {0} win?", "Check lottery ticket {0}.", "Is {0} a winning ticket?"],
                  ["彩票 {0} 中奖了吗？", "帮我查一下 {0} 这张彩票。"], obs={"won": False},
                  ans=("Ticket {0} did not win.", "{0} 没有中奖。"))


EXTRA = [movie_info, flower, museum, gym, recipe_scale, stopwatch, news_topic, air_quality, dictionary_zh, car_rental,
         doc_print, vaccine, translate_word, garage, lottery]


MORE = [train_status, crypto, book, podcast, lyrics, thermostat, volume, navigate, hotel, meeting, units, spelling,
        speak, wine, holidays, blinds, appliance, split_bill, receipt, sms, day_of_week, parking]


DOMAINS = [order, weather, timezone, email, reminder, web_search, tip, define, score, showtimes, pizza, distance, calories,
           contact, timer]

SMALL_TALK = [("Hi there!", "Hello! How can I help you today?"),
              ("Thanks a lot!", "You're welcome! Let me know if you need anything else."),
              ("Good morning!", "Good morning! How can I help you?"),
              ("Who are you?", "I'm a helpful AI assistant. I can answer questions and use tools when they help."),
              ("你好！", "你好！有什么可以帮你的吗？"),
              ("谢谢你！", "不客气！还有什么需要帮忙的吗？")]


def tool_row(r, domain, others, end_at_call, max_distractors=2):
    tool, args, q, obs, ans = domain(r)
    distractors = [d(r)[0] for d in r.sample(others, r.randint(1, max_distractors))]
    tools = [tool] + [t for t in distractors if t["name"] != tool["name"]]
    r.shuffle(tools)
    turns = [{"from": "human", "value": q},
             {"from": "function_call", "value": json.dumps({"name": tool["name"], "arguments": args},
                                                           ensure_ascii=False)}]
    if not end_at_call:
        turns += [{"from": "observation", "value": json.dumps(obs, ensure_ascii=False)}, {"from": "gpt", "value": ans}]
    return {"conversations": turns, "tools": json.dumps(tools, ensure_ascii=False)}


def has_zh(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def zh_domains(domains) -> list:
    """The domains whose requests come in Chinese too (probed with their own generator, apart from the data's RNG)."""
    probe = random.Random(12345)
    return [d for d in domains if any(has_zh(d(probe)[2]) for _ in range(60))]


def zh_tool_row(r, domain, others, end_at_call, max_distractors=2, tries=200):
    """A tool_row whose request is Chinese: the domain's own generator, drawn until it asks in Chinese."""
    for _ in range(tries):
        state = r.getstate()
        row = tool_row(r, domain, others, end_at_call, max_distractors)
        if has_zh(row["conversations"][0]["value"]):
            return row
    r.setstate(state)
    return tool_row(r, domain, others, end_at_call, max_distractors)


def parallel_row(r, domains, end_at_call):
    d1, d2 = r.sample(domains, 2)
    (t1, a1, q1, o1, s1), (t2, a2, q2, o2, s2) = d1(r), d2(r)
    zh = has_zh(q1 + q2)
    q = f"{q1}{q2}" if zh else f"{q1} Also, {q2[0].lower() + q2[1:]}"
    tools = [t1, t2] + ([d(r)[0] for d in r.sample([d for d in domains if d not in (d1, d2)], 1)])
    r.shuffle(tools)
    calls = [{"name": t1["name"], "arguments": a1}, {"name": t2["name"], "arguments": a2}]
    turns = [{"from": "human", "value": q}, {"from": "function_call", "value": json.dumps(calls, ensure_ascii=False)}]
    if not end_at_call:
        turns += [{"from": "observation", "value": json.dumps(o1, ensure_ascii=False)},
                  {"from": "observation", "value": json.dumps(o2, ensure_ascii=False)},
                  {"from": "gpt", "value": f"{s1} {s2}"}]
    return {"conversations": turns, "tools": json.dumps(tools, ensure_ascii=False)}


def chat_row(r, domains, question, answer, max_tools=2):
    tools = [d(r)[0] for d in r.sample(domains, r.randint(1, max_tools))]
    return {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
            "tools": json.dumps(tools, ensure_ascii=False)}


def make_train(seed: int = 0, n_single: int = 148, n_parallel: int = 12, n_chat: int = 30, more: bool = True,
               end_at_call: float = 0.7, max_distractors: int = 2, chat_tools: int = 2, n_zh: int = 0,
               extra: bool = False) -> list[dict]:
    """n_single one-call rows cycling over the domains (all 37 with `more`, the first 15 without), n_zh more
    one-call rows asked in Chinese (cycling over the domains that have Chinese requests), n_parallel two-call rows,
    n_chat of the model's own general answers with tools offered (plus the small talk)."""
    r = random.Random(seed)
    domains = (DOMAINS + MORE if more else DOMAINS) + (EXTRA if extra else [])
    rows = []
    for i in range(n_single):
        d = domains[i % len(domains)]
        rows.append(tool_row(r, d, [x for x in domains if x is not d], r.random() < end_at_call, max_distractors))
    zh = zh_domains(domains) if n_zh else []
    for i in range(n_zh):
        d = zh[i % len(zh)]
        rows.append(zh_tool_row(r, d, [x for x in domains if x is not d], r.random() < end_at_call, max_distractors))
    for _ in range(n_parallel):
        rows.append(parallel_row(r, domains, end_at_call=r.random() < end_at_call))
    replay = json.loads((ROOT / "src/tuneforge/data/builtin/general_replay_smollm2.json").read_text(encoding="utf-8"))
    for row in r.sample(replay, min(n_chat, len(replay))):
        rows.append(chat_row(r, domains, row["instruction"], row["output"], chat_tools))
    for q, a in SMALL_TALK:
        rows.append(chat_row(r, domains, q, a, chat_tools))
    r.shuffle(rows)
    return rows


# ---- held out: other domains, other tool and parameter names --------------------------------------------------------
def heldout_tools():
    return {
        "flight": fn("get_flight_status", "Look up the live status of a flight", [
            ("flight_number", "string", "Flight number such as BA117")]),
        "stock": fn("get_stock_price", "Latest share price for a stock ticker", [
            ("ticker", "string", "Stock ticker symbol, e.g. AAPL")]),
        "currency": fn("convert_currency", "Convert an amount of money between currencies", [
            ("amount", "number", "Amount to convert"), ("from_currency", "string", "ISO code to convert from"),
            ("to_currency", "string", "ISO code to convert to")]),
        "translate": fn("translate_text", "Translate text into another language", [
            ("text", "string", "Text to translate"), ("target_language", "string", "Language to translate into")]),
        "recipe": fn("find_recipe", "Find a cooking recipe that uses an ingredient", [
            ("ingredient", "string", "Main ingredient")]),
        "alarm": fn("set_alarm", "Set an alarm clock", [("alarm_time", "string", "Time, HH:MM")]),
        "package": fn("track_package", "Track a parcel by its tracking code", [
            ("tracking_code", "string", "Parcel tracking code")]),
        "song": fn("play_song", "Play a song on the speaker", [("song_title", "string", "Title of the song")]),
        "table": fn("book_restaurant", "Reserve a table at a restaurant", [
            ("restaurant", "string", "Restaurant name"), ("guests", "integer", "Number of people")]),
        "lights": fn("toggle_lights", "Turn the lights of a room on or off", [
            ("room", "string", "Room name"), ("state", "string", "on or off")]),
        "population": fn("get_population", "Population of a country", [("country", "string", "Country name")]),
        "taxi": fn("order_taxi", "Order a taxi to an address", [("pickup_address", "string", "Pickup address")]),
    }


HELD_CALLS = [  # (tools offered, question, expected calls, lang)
    (["flight", "stock"], "What's the status of flight BA117?", [("flight", {"flight_number": "BA117"})], "en"),
    (["stock", "recipe"], "What is the stock price of NVDA?", [("stock", {"ticker": "NVDA"})], "en"),
    (["recipe", "song", "alarm"], "Find me a recipe with mushrooms.", [("recipe", {"ingredient": "mushrooms"})], "en"),
    (["alarm", "taxi"], "Set an alarm for 06:30.", [("alarm", {"alarm_time": "06:30"})], "en"),
    (["package", "flight"], "Where is my parcel? The tracking code is 1Z999AA1.",
     [("package", {"tracking_code": "1Z999AA1"})], "en"),
    (["song", "lights"], "Play the song Yellow Submarine.", [("song", {"song_title": "Yellow Submarine"})], "en"),
    (["population", "stock"], "What is the population of Kenya?", [("population", {"country": "Kenya"})], "en"),
    (["taxi", "alarm", "recipe"], "Order a taxi to 22 Baker Street.", [("taxi", {"pickup_address": "22 Baker Street"})],
     "en"),
    (["table", "song"], "Book a table at Luigi's for 4 people.", [("table", {"restaurant": "Luigi's", "guests": 4})],
     "en"),
    (["lights", "package"], "Turn the lights in the kitchen off.", [("lights", {"room": "kitchen", "state": "off"})],
     "en"),
    (["currency", "flight"], "Convert 50 USD to EUR.",
     [("currency", {"amount": 50, "from_currency": "USD", "to_currency": "EUR"})], "en"),
    (["translate", "recipe"], "Translate \"good morning\" into French.",
     [("translate", {"text": "good morning", "target_language": "French"})], "en"),
    (["flight", "taxi", "song"], "Is flight LH400 on time?", [("flight", {"flight_number": "LH400"})], "en"),
    (["stock", "population"], "How much is one share of TSLA right now?", [("stock", {"ticker": "TSLA"})], "en"),
    (["recipe", "stock"], "I have some chicken. Can you find a recipe for it?", [("recipe", {"ingredient": "chicken"})],
     "en"),
    (["song", "alarm", "package"], "Can you play Bohemian Rhapsody?", [("song", {"song_title": "Bohemian Rhapsody"})],
     "en"),
    (["package", "song"], "Track package JD0147.", [("package", {"tracking_code": "JD0147"})], "en"),
    (["population", "flight"], "How many people live in Brazil?", [("population", {"country": "Brazil"})], "en"),
    (["flight", "stock"], "What's the status of flight MU588? Also, what is the stock price of AMD?",
     [("flight", {"flight_number": "MU588"}), ("stock", {"ticker": "AMD"})], "en"),
    (["alarm", "song", "lights"], "Set an alarm for 07:45. Also, play the song Hey Jude.",
     [("alarm", {"alarm_time": "07:45"}), ("song", {"song_title": "Hey Jude"})], "en"),
    (["flight", "stock"], "查询航班 CA1234 的状态。", [("flight", {"flight_number": "CA1234"})], "zh"),
    (["stock", "recipe"], "帮我查一下 BABA 的股价。", [("stock", {"ticker": "BABA"})], "zh"),
    (["alarm", "song"], "帮我设一个 05:50 的闹钟。", [("alarm", {"alarm_time": "05:50"})], "zh"),
    (["song", "package"], "播放歌曲《月亮代表我的心》。", [("song", {"song_title": "月亮代表我的心"})], "zh"),
    (["package", "taxi"], "我的快递单号是 SF123456，帮我查一下到哪了。", [("package", {"tracking_code": "SF123456"})], "zh"),
    (["population", "alarm"], "日本有多少人口？", [("population", {"country": "日本"})], "zh"),
    (["recipe", "flight"], "找一个用豆腐做的菜谱。", [("recipe", {"ingredient": "豆腐"})], "zh"),
    (["taxi", "stock"], "帮我叫一辆出租车到人民广场。", [("taxi", {"pickup_address": "人民广场"})], "zh"),
]

def heldout_tools_b():
    """A second held-out set, written after the recipe sweeps of 2026-12-03 had chosen on the first: other tools
    again, so a recipe picked on the first set is checked on requests no choice was made on. (Its first version had
    a nutrition tool whose question and parameter `dish` repeated the training set's calories domain; replaced by
    tide_times before any recipe was chosen on this set.)"""
    return {
        "bus": fn("next_bus", "When the next bus leaves a stop", [("stop_name", "string", "Name of the bus stop")]),
        "pharmacy": fn("find_pharmacy", "Find an open pharmacy in a district", [
            ("district", "string", "District or neighbourhood")]),
        "quote": fn("get_quote", "A famous quote by an author", [("author", "string", "Author's name")]),
        "plant": fn("water_plant", "Water a plant of the smart garden", [("plant_name", "string", "Which plant")]),
        "rate": fn("exchange_rate", "The exchange rate between two currencies", [
            ("base", "string", "ISO code of the base currency"), ("quote_currency", "string", "ISO code quoted")]),
        "vpn": fn("connect_vpn", "Connect the VPN to a server country", [("server_country", "string", "Country")]),
        "bmi": fn("compute_bmi", "Body-mass index from weight and height", [
            ("weight_kg", "number", "Weight in kg"), ("height_cm", "number", "Height in cm")]),
        "doctor": fn("book_doctor", "Book a doctor's appointment", [
            ("specialty", "string", "Kind of doctor"), ("date_wanted", "string", "Date, YYYY-MM-DD")]),
        "tide": fn("tide_times", "High and low tide times at a beach", [("beach", "string", "Beach name")]),
        "charger": fn("find_charger", "Find an EV charging station near a place", [("near_place", "string", "Place")]),
        "wiki": fn("wiki_summary", "A short encyclopedia summary of a topic", [("article", "string", "Topic")]),
        "door": fn("lock_door", "Lock or unlock a door", [("door", "string", "Which door"),
                                                         ("action", "string", "lock or unlock")]),
    }


HELD_CALLS_B = [
    (["bus", "quote"], "When does the next bus leave from Elm Road?", [("bus", {"stop_name": "Elm Road"})], "en"),
    (["pharmacy", "vpn"], "Is there an open pharmacy in Soho?", [("pharmacy", {"district": "Soho"})], "en"),
    (["quote", "wiki"], "Give me a quote by Oscar Wilde.", [("quote", {"author": "Oscar Wilde"})], "en"),
    (["plant", "door", "bus"], "Water the basil.", [("plant", {"plant_name": "basil"})], "en"),
    (["rate", "bmi"], "What is the exchange rate from GBP to JPY?", [("rate", {"base": "GBP", "quote_currency": "JPY"})],
     "en"),
    (["vpn", "charger"], "Connect the VPN to Switzerland.", [("vpn", {"server_country": "Switzerland"})], "en"),
    (["bmi", "tide"], "I weigh 70 kg and I am 175 cm tall. What is my BMI?",
     [("bmi", {"weight_kg": 70, "height_cm": 175})], "en"),
    (["doctor", "bus"], "Book a dermatologist for 2027-02-11.",
     [("doctor", {"specialty": "dermatologist", "date_wanted": "2027-02-11"})], "en"),
    (["tide", "quote"], "When is high tide at Brighton Beach?", [("tide", {"beach": "Brighton Beach"})], "en"),
    (["charger", "pharmacy", "wiki"], "Find an EV charger near Oak Mall.", [("charger", {"near_place": "Oak Mall"})],
     "en"),
    (["wiki", "rate"], "Summarize the article on black holes.", [("wiki", {"article": "black holes"})], "en"),
    (["door", "plant"], "Lock the front door.", [("door", {"door": "front", "action": "lock"})], "en"),
    (["bus", "charger"], "Next bus at Central Square?", [("bus", {"stop_name": "Central Square"})], "en"),
    (["quote", "door"], "Can you find me something Mark Twain said?", [("quote", {"author": "Mark Twain"})], "en"),
    (["vpn", "wiki"], "Connect the VPN to Japan. Also, summarize the article on volcanoes.",
     [("vpn", {"server_country": "Japan"}), ("wiki", {"article": "volcanoes"})], "en"),
    (["plant", "pharmacy", "bus"], "Water the fern. Also, find an open pharmacy in Chelsea.",
     [("plant", {"plant_name": "fern"}), ("pharmacy", {"district": "Chelsea"})], "en"),
    (["bus", "vpn"], "人民路站的下一班公交车什么时候到？", [("bus", {"stop_name": "人民路"})], "zh"),
    (["pharmacy", "quote"], "朝阳区有没有营业的药店？", [("pharmacy", {"district": "朝阳区"})], "zh"),
    (["quote", "plant"], "给我一句鲁迅的名言。", [("quote", {"author": "鲁迅"})], "zh"),
    (["vpn", "door"], "把 VPN 连到新加坡。", [("vpn", {"server_country": "新加坡"})], "zh"),
    (["tide", "charger"], "三亚湾今天什么时候涨潮？", [("tide", {"beach": "三亚湾"})], "zh"),
    (["charger", "bus"], "帮我找一下国贸附近的充电桩。", [("charger", {"near_place": "国贸"})], "zh"),
    (["wiki", "quote"], "简单介绍一下长城。", [("wiki", {"article": "长城"})], "zh"),
    (["plant", "tide"], "给绿萝浇水。", [("plant", {"plant_name": "绿萝"})], "zh"),
]

CHAT_TOOLS = ["flight", "stock", "alarm", "package", "song", "taxi", "lights"]  # no geography tool for chit-chat
SMALL_TALK_HELD = ["Hello! How are you today?", "Thank you so much for your help!", "Tell me a fun fact about cats.",
                   "What is your favourite color?", "早上好！", "你能做什么？"]


def make_heldout(seed: int = 1) -> dict:
    r = random.Random(seed)
    tools = heldout_tools()
    calls = []
    for keys, q, expect, lang in HELD_CALLS:
        offered = [tools[k] for k in keys]
        r.shuffle(offered)
        calls.append({"question": q, "lang": lang, "tools": offered,
                      "expect": [{"name": tools[k]["name"], "arguments": a} for k, a in expect]})
    general = json.loads((ROOT / "tests/data/general_heldout.json").read_text(encoding="utf-8"))
    chat = []
    for q in [g["question"] for g in general[::2]] + SMALL_TALK_HELD:
        offered = [tools[k] for k in r.sample(CHAT_TOOLS, r.randint(1, 3))]
        chat.append({"question": q, "tools": offered})
    return {"calls": calls, "chat": chat}


def make_heldout_b(seed: int = 2) -> dict:
    """The second held-out set: calls only (chit-chat and retention are the first set's)."""
    r = random.Random(seed)
    tools = heldout_tools_b()
    calls = []
    for keys, q, expect, lang in HELD_CALLS_B:
        offered = [tools[k] for k in keys]
        r.shuffle(offered)
        calls.append({"question": q, "lang": lang, "tools": offered,
                      "expect": [{"name": tools[k]["name"], "arguments": a} for k, a in expect]})
    return {"calls": calls, "chat": []}


def main() -> None:
    train = make_train()
    OUT_TRAIN.write_text(json.dumps(train, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    held = make_heldout()
    OUT_HELDOUT.write_text(json.dumps(held, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    held_b = make_heldout_b()
    OUT_HELDOUT_B.write_text(json.dumps(held_b, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{OUT_TRAIN}: {len(train)} rows; {OUT_HELDOUT}: {len(held['calls'])} call and {len(held['chat'])} chat")


if __name__ == "__main__":
    main()
