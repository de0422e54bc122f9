# Runs the filters of a rendered Logstash pipeline, as Logstash's plugins run them, on
# events given as JSON on stdin: {"ops": [...], "events": [{...}, ...]}; prints the events.
#
# - gsub: logstash-filter-mutate `gsub_dynamic_fields`: value.gsub(Regexp.new(needle), replacement)
# - grok: logstash-filter-grok with jls-grok: each pattern (already expanded from the
#   pattern library) compiled as a Regexp (Onigmo here, Oniguruma's Java port in Logstash),
#   first match wins (break_on_match), named captures set as fields, empty captures dropped
#   (keep_empty_captures => false), "_grokparsefailure"-style tag on no match.
# - ruby: logstash-filter-ruby `register`: eval("@codeblock = lambda { |event, &new_event_block|
#   #{@code} }", binding, "(ruby filter code)"), then @codeblock.call(event); an exception
#   tags the event "_rubyexception".
require "json"

class Event
  def initialize(data) = @data = data
  attr_reader :data

  def path(ref) = ref.start_with?("[") ? ref.scan(/\[([^\]]+)\]/).flatten : [ref]

  def get(ref)
    path(ref).reduce(@data) { |node, key| node.is_a?(Hash) ? node[key] : nil }
  end

  def set(ref, value)
    keys = path(ref)
    node = keys[0..-2].reduce(@data) { |n, k| n[k] ||= {} }
    node[keys[-1]] = value
  end

  def include?(ref) = !get(ref).nil?
  def tag(name) = ((@data["tags"] ||= []) << name)
end

class Filters
  def gsub(op, event)
    op["rules"].each do |field, needle, replacement|
      value = event.get(field)
      event.set(field, value.gsub(Regexp.new(needle), replacement)) if value.is_a?(String)
    end
  end

  def grok(op, event)
    @grok ||= {}
    regexes = (@grok[op.object_id] ||= op["patterns"].map { |p| Regexp.new(p) })
    value = event.get(op["field"])
    match = regexes.lazy.map { |r| r.match(value.to_s) }.find { |m| m }
    unless match
      op["tag_on_failure"].each { |t| event.tag(t) }
      return
    end
    match.names.each do |name|
      captured = match[name]
      next if captured.nil? || (captured.empty? && !op["keep_empty_captures"])
      event.set(name, captured)
    end
  end

  def ruby(op, event)
    @ruby ||= {}
    block = (@ruby[op["code"]] ||= compile(op["code"]))
    block.call(event)
  rescue Exception => e
    event.tag("_rubyexception")
    event.set("_rubyexception_message", e.message)
  end

  def compile(code)
    eval("@codeblock = lambda { |event, &new_event_block| #{code} }", binding, "(ruby filter code)")
  end
end

# ---------------------------------------------------------------- whole filter section
# {"program": [...], "events": [...]}: the filter section as read by lscl.py, run node by
# node. Plugins: grok, ruby, mutate (Logstash's order: replace, convert, gsub, lowercase,
# then add_field and remove_field; an `id` counts the events it passes, as Logstash's
# plugin metrics do), date (Joda yyyy/MM/dd HH:mm:ss only, UTC), json (logstash-filter-json
# `filter`: parse `source`; into `target`, or merged into the event without one; on a parse
# error the `tag_on_failure` tags, default `_jsonparsefailure`, unless `skip_on_invalid_json`),
# drop (logstash-filter-drop: `event.cancel`; the pipeline passes a cancelled event to no
# further filter or output: logstash-core `DatasetCompiler` filters cancelled events out);
# the fingerprint is not run (it only names the document). Comparisons with a number: see
# `compare`. A field alone is truthy unless nil, empty or "false" (EventCondition FieldTruthy).
class Program
  attr_reader :counts

  def initialize(filters) = (@filters = filters; @counts = Hash.new(0))

  def sprintf(event, text) = text.gsub(/%\{([^}]+)\}/) { event.get(Regexp.last_match(1)).to_s }

  def value(event, operand)
    return event.get(operand["field"]) if operand.key?("field")
    operand.key?("number") ? operand["number"] : operand["string"]
  end

  def test(event, cond)
    case cond["op"]
    when "or" then cond["args"].any? { |c| test(event, c) }
    when "and" then cond["args"].all? { |c| test(event, c) }
    when "not" then !test(event, cond["arg"])
    when "exists" then v = event.get(cond["field"]); !(v.nil? || v.to_s.empty? || v.to_s == "false")
    when "==" then value(event, cond["left"]) == value(event, cond["right"])
    when "!=" then value(event, cond["left"]) != value(event, cond["right"])
    when "=~" then !!(value(event, cond["left"]).to_s =~ Regexp.new(cond["regex"]))
    when "<=", ">=", "<", ">" then compare(event, cond)
    else raise "unsupported condition #{cond}"
    end
  end

  # logstash-core EventCondition.Compiler: `>` is FieldGreaterThanNumber (the literal's
  # RubyNumeric#compareTo the field: a field that is not a number, nil included, raises and
  # stops the pipeline worker), `<=` is not(gt), `>=` gt or eq, `<` not(gt or eq); only an
  # integer literal compiles (UnexpectedTypeException otherwise).
  def compare(event, cond)
    left, right = value(event, cond["left"]), cond["right"]["number"]
    raise "Logstash compiles only integer literals in comparisons: #{right}" unless right == right.to_i
    raise "Logstash raises comparing #{left.inspect} with #{right}: guard the field first" unless left.is_a?(Numeric)
    gt, eq = left > right, left == right
    {">" => gt, "<=" => !gt, ">=" => gt || eq, "<" => !(gt || eq)}.fetch(cond["op"])
  end

  def run(event, body)
    body.each do |node|
      return if event.data["__cancelled"]
      if node["branch"]
        clause = node["branch"].find { |c| c["cond"].nil? || test(event, c["cond"]) }
        run(event, clause["body"]) if clause
      else
        plugin(event, node["name"], node["attrs"])
      end
    end
  end

  def plugin(event, name, a)
    case name
    when "grok"
      (field, patterns), = a["match"].to_a
      @filters.grok({"field" => field, "patterns" => a["expanded"], "tag_on_failure" => a["tag_on_failure"] || ["_grokparsefailure"],
                     "keep_empty_captures" => a["keep_empty_captures"] == "true"}, event)
    when "ruby" then @filters.ruby({"code" => a["code"]}, event)
    when "mutate" then mutate(event, a)
    when "date" then date(event, a)
    when "json" then json(event, a)
    when "drop" then event.data["__cancelled"] = true
    when "fingerprint" then nil
    else raise "unsupported plugin #{name}"
    end
    @counts[a["id"]] += 1 if a["id"]
  end

  def mutate(event, a)
    (a["replace"] || {}).each { |f, v| event.set(f, sprintf(event, v)) }
    (a["convert"] || {}).each { |f, t| event.set(f, Integer(event.get(f), 10)) if t == "integer" && event.get(f) }
    @filters.gsub({"rules" => a["gsub"].each_slice(3).to_a}, event) if a["gsub"]
    (a["lowercase"] || []).each { |f| event.set(f, event.get(f).downcase) if event.get(f).is_a?(String) }
    (a["add_field"] || {}).each { |f, v| event.set(f, sprintf(event, v)) }
    (a["remove_field"] || []).each { |f| (keys = event.path(f); keys[0..-2].reduce(event.data) { |n, k| n[k] || {} }.delete(keys[-1])) }
  end

  def json(event, a)
    text = event.get(a["source"]) or return
    parsed = JSON.parse(text)
    if a["target"]
      event.set(a["target"], parsed)
    elsif parsed.is_a?(Hash)
      parsed.each { |k, v| event.data[k] = v }
    end
  rescue JSON::ParserError
    (a["tag_on_failure"] || ["_jsonparsefailure"]).each { |t| event.tag(t) } unless a["skip_on_invalid_json"] == "true"
  end

  def date(event, a)
    field, pattern = a["match"]
    text = event.get(field) or return
    format = pattern.gsub("yyyy", "%Y").gsub("MM", "%m").gsub("dd", "%d").gsub("HH", "%H").gsub("mm", "%M").gsub("ss", "%S")
    raise "only UTC is modelled" unless a["timezone"] == "UTC"
    event.set("@timestamp", Time.strptime(text + " UTC", format + " %Z").utc.iso8601)
    (a["remove_field"] || []).each { |f| event.data.delete(f) }
  rescue ArgumentError
    event.tag("_dateparsefailure")
  end
end

require "time"
input = JSON.parse($stdin.read)
filters = Filters.new
if input["program"]
  program = Program.new(filters)
  # a dropped (cancelled) event reaches no output: null in its place
  events = input["events"].map { |data| e = Event.new(data); program.run(e, input["program"]); e.data["__cancelled"] ? nil : e.data }
  puts JSON.generate({"events" => events, "counts" => program.counts})
  exit
end
out = input["events"].map do |data|
  event = Event.new(data)
  input["ops"].each do |op|
    next if op["if_field"] && !event.include?(op["if_field"])
    filters.public_send(op["type"], op, event)
  end
  event.data
end
puts JSON.generate(out)
